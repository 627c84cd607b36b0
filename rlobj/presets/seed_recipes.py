r"""Faithful recipes, continued: the seed papers whose terms landed with issue 5 (RL-PLUS,
CANON, LaSeR, RLPR, Co-rewarding, Self-Aligned Reward) and the noisy-verifier corrections.

Same contract as :mod:`rlobj.presets.recipes` (whose ``RECIPES`` table holds these recipes as
well): each chain is the paper's whole objective, each :class:`~rlobj.presets.recipes.Setting`
names the reference's value and the file and keys that set it, and an objective setting's rlobj
value is read from the chain. The settings were read in the authors' repositories (commit
given per recipe); "paper only" marks a recipe whose authors released no training code.
"""

from rlobj.algebra.aggregation import (
           constant_normalizer,
           seq_mean_token_mean,
           seq_mean_token_sum,
           token_mean,
)
from rlobj.algebra.term import chain
from rlobj.presets.recipes import (
    DUAL,
    EPS_HIGH,
    EPS_LOW,
    RECIPE_SCRIPT_KEYS,
    FromChain,
    Recipe,
    _agg,
    _clip,
    _run,
    _s,
)
from rlobj.terms.advantages import (
           canon_advantage,
           group_mean_baseline,
           group_zscore,
           leave_one_out,
           self_reward_advantage,
)
from rlobj.terms.auxiliary import self_reward_mse
from rlobj.terms.divergences import k3_kl, kl_penalty
from rlobj.terms.masks import drop_zero_variance_groups
from rlobj.terms.regularizers import entropy_bonus
from rlobj.terms.rewards import (
           aepo_reward,
           backward_correction,
           co_reward,
           rlpr_reward,
           self_aligned_reward,
)
from rlobj.terms.surrogates import clip_ratio, hint_clip_ratio, mis_exploration_pg

__all__ = ["SEED_RECIPES", "rl_plus_recipe", "canon_recipe", "laser_recipe", "rlpr_recipe", "co_reward_recipe",
           "sar_recipe", "noisy_rlvr_recipe", "guide_recipe", "ghpo_recipe", "aepo_recipe",
           "wirelessmath_recipe"]

# ------------------------------------------------------------------------------------------------
#: RL-PLUS (Dong et al., arXiv 2508.00222). Reference: YihongDong/RL-PLUS @ eb4aa4d,
#: ``exp_scripts/train_RL-PLUS.sh`` (``algorithm.grpo_use_std=False``: advantages *without* the
#: std; ``off_policy_strategy=RL-PLUS``, ``loss_remove_clip=True``, ``loss_remove_token_mean=True``,
#: ``entropy_coeff=0.001``, no KL, ``rollout.n=8`` with ``n_prefix=1`` external demonstration,
#: lr 1e-6, temperature 1.0, ``max_response_length=8192``) and ``recipe/rlplus_core_alg.py::
#: compute_token_on_off_policy_loss`` (``sum(pg * mask) / mask.shape[-1]``: the policy loss is
#: summed over tokens and divided by the padded length, **not** by the number of sequences)
#: with ``rlplus_actor.py`` (``entropy_loss = masked_mean(entropy, mask)``: the entropy is a
#: token mean). rlobj: ``constant_normalizer(8192, per_sequence=False)`` for the policy part and
#: ``entropy_bonus(aggregation="token_mean")`` for the entropy part. Across micro-batches and
#: ranks the reference adds the losses of its token-budgeted micro-batches (gradient
#: accumulation 1) and averages ranks, so its policy term is divided by the number of ranks too
#: and its entropy term counts once per micro-batch; rlobj's obey the micro-batch law (both
#: equal the reference for one micro-batch on one rank).
rl_plus_recipe = chain(group_mean_baseline(), mis_exploration_pg(gamma=0.5),
                       entropy_bonus(coef=0.001, aggregation="token_mean"),
                       constant_normalizer(max_tokens=8192, per_sequence=False), name="rl_plus_recipe")

#: CANON (Chen et al., arXiv 2509.23962), entropy variant. Reference: biuboomc/CANON @ 7d6f814,
#: ``scripts/setups.sh`` (``alpha=1.0``, ``_lambda=1.0`` = mu of Eq. 5: pure inter-group,
#: ``clip_high=0.28``, ``loss_agg_mode="seq-mean-token-sum"``, ``n_resp_per_prompt=16``, no KL,
#: ``entropy_coeff=0.0``, lr 1e-6, weight decay 0.1, temperature 1.0, 512 / 32 prompts,
#: ``max_response_length=8192``), ``verl/trainer/ppo/core_algos.py::
#: compute_dr_entropy_per_token_group_outcome_advantage`` (advantage divided by ``max_length``
#: = ``data.max_response_length`` when the aggregation is ``seq-mean-token-sum``,
#: ``dapo_ray_trainer.py``) and ``verl/trainer/ppo/config/dapo_trainer.yaml`` (clip low 0.2,
#: dual clip 3). The script lists every ``adv_estimator`` and keeps the last
#: (``dr_entropy_token_budget_cosine_restart_r``, a scheduled variant rlobj does not have); the
#: README names ``dr_entropy_token_budget`` as CANON based on entropy: that is this recipe.
canon_recipe = chain(canon_advantage(metric="entropy", mu=1.0, alpha=1.0, norm_const=8192.0),
                     clip_ratio(eps_low=0.2, eps_high=0.28, dual_clip=3.0), seq_mean_token_sum(),
                     name="canon_recipe")

#: LaSeR (Yang et al., arXiv 2510.14943). Reference: RUCBM/LaSeR @ 48996f7,
#: ``verl/examples/grpo_trainer/run_qwen2_5_7b.sh`` (``self_reward_loss_coef=0.1``,
#: ``self_reward_kl_coef=0.1``, ``ref_model_log_ratio_constant=-23.0``,
#: ``self_reward_loss_balanced=True``, ``self_rewarding_advantages_integration_coef=0.1``,
#: ``self_rewarding_advantages_filtering_threshold=0.1``, warm-ups 200 + 200 steps, KL loss 0,
#: entropy 0, n = 8, lr 1e-6, temperature 1.0, 128 / 128 prompts), ``verl/trainer/config/
#: actor/actor.yaml`` (clip 0.2 / 0.2, dual clip 3, token-mean), ``dp_actor.py`` (the MSE
#: ``.mean()`` over the rows of each micro-batch: ``self_reward_mse(scope="micro_batch")``,
#: **the gradient then depends on the micro-batch size**) and ``ray_trainer.py`` (the
#: self-reward advantage divides by the group std with no epsilon: ``eps_self=0``, the GRPO
#: advantage by std + 1e-6). The recipe is the
#: objective after the warm-ups; before them the reference uses plain GRPO advantages
#: (``group_zscore`` in place of ``self_reward_advantage``).
laser_recipe = chain(self_reward_advantage(tau=0.1, std_floor=0.1, beta_v=0.1, c=-23.0, eps=1e-6, eps_self=0.0),
                     clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=3.0),
                     self_reward_mse(coef=0.1, beta_v=0.1, c=-23.0, balanced=True, scope="micro_batch"),
                     token_mean(), name="laser_recipe")

#: RLPR (OpenBMB, arXiv 2506.18254). Reference: OpenBMB/RLPR @ 8490fca,
#: ``examples/RLPR/reproduce_qwen.sh`` (``reward_manager=prob``, ``compute_score_name=
#: mean_exp_log_softmax``, ``shaping_function_name=threshold_0``, ``format_mode=R1``,
#: ``clip_ratio_low=0.2``, ``clip_ratio_high=0.27``, KL coefficient 0, ``std_filter_beta=0.5``
#: with EMA 0.99, n = 8, lr 1e-6, 768 / 192 prompts, ``max_response_length=3072``) and
#: ``verl/trainer/config/ppo_trainer.yaml`` (``entropy_coeff: 0.001``, not overridden;
#: temperature 1.0; token-mean in ``dp_actor.py``; no dual clip in ``compute_policy_loss``).
#: The std filter is the batch function ``rlobj.rollout.filters.std_filter(beta=0.5)``; the
#: reference's repetition penalty is not part of the recipe.
rlpr_recipe = chain(rlpr_reward(format_weight=0.1), group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.27),
                    entropy_bonus(coef=0.001), token_mean(), name="rlpr_recipe")

#: Co-rewarding-I (Zhang et al., arXiv 2508.00410). Reference: tmlr-group/Co-rewarding @ 6c60ea4,
#: ``Co-rewarding-I/run_corewarding-I.sh`` (``adv_estimator=co_reward``: GRPO inside each view,
#: ``ray_trainer.py``; ``kl_loss_coef=0.005``, ``kl_loss_type=low_var_kl``, ``entropy_coeff=0``,
#: n = 8, lr 3e-6, 128 / 128 prompts, ``max_response_length=3072``) and
#: ``verl/trainer/config/ppo_trainer.yaml`` (clip 0.2 / 0.2, dual clip 3, token-mean,
#: temperature 1.0, ``norm_adv_by_std_in_grpo: True``).
co_reward_recipe = chain(co_reward(), group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=3.0),
                         k3_kl(beta=0.005), token_mean(), name="co_reward_recipe")

#: Self-Aligned Reward (Han et al., arXiv 2509.05489). Reference:
#: amazon-science/Self-Aligned-Reward-Towards_Effective_and_Efficient_Reasoners @ 08892d0,
#: ``scripts/SA-grpo-1.7B.sh`` (``reward_types=["base","ppl_qa"]``, ``reward_factors=[1,0.2]``,
#: ``norm_adv_by_std_in_grpo=False``, ``loss_agg_mode=seq-mean-token-sum-norm``,
#: ``kl_loss_coef=0.001`` low_var_kl, n = 6, lr 1e-6, 128 / 64 prompts,
#: ``max_response_length=4096``) and ``verl/trainer/config/ppo_trainer.yaml`` (clip 0.2 / 0.2,
#: dual clip 3, entropy 0, temperature 1.0). That verl's ``seq-mean-token-sum-norm`` divides each
#: micro-batch's token sum by the padded length only and the actor then divides by the gradient
#: accumulation steps: the whole is $\sum\ell / (N_\text{seq} L)$ times the rows of a
#: micro-batch per GPU; rlobj uses ``constant_normalizer(4096)`` ($\sum\ell / (N_\text{seq} L)$,
#: verl 0.9, oat, TRL), which differs from it by that constant factor.
sar_recipe = chain(self_aligned_reward(alpha=0.2), group_mean_baseline(),
                   clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=3.0), k3_kl(beta=0.001),
                   constant_normalizer(max_tokens=4096), name="sar_recipe")

#: Noisy-verifier backward correction (Cai et al., arXiv 2510.00915; paper only: the announced
#: code, caixq1996/noisy-RLVR, was not available): PGBC's reward
#: $\hat R = (\tilde R - \rho_0)/(1 - \rho_0 - \rho_1)$ with the leave-one-out baseline and no
#: group std (App. B.2), the paper's synthetic noise $\rho_0 = 0.1$, $\rho_1 = 0.2$, KL 1e-3,
#: no entropy, G = 8, lr 3e-6, 128 prompts, ``T_max`` 3072 (App. E.3). The PPO clip and the
#: aggregation are not stated: rlobj's clip 0.2 and token mean are marked unverified.
noisy_rlvr_recipe = chain(backward_correction(rho0=0.1, rho1=0.2), leave_one_out(),
                          clip_ratio(eps_low=0.2, eps_high=0.2), k3_kl(beta=0.001), token_mean(),
                          name="noisy_rlvr_recipe")

#: Guide-GRPO (Nath et al., arXiv 2506.13923). Reference: vaskar-open-source-research/guide_rl
#: @ 2f27715, ``verl/experiments/math_reasoning/configs/guide_paper_experiments/guide_grpo_qwen.sh``
#: (``reroll_with_hints=True`` below accuracy ``reroll_threshold=0.001``: a prompt whose 8 plain
#: rollouts all fail is rolled again, the whole group, with the hint; ``importance_weighted_reroll
#: =True``: the old log-probs of those rows are taken with the hinted prompt, the policy's
#: without; ``apply_off_policy_shaping=True``, ``gamma_strategy=percentile``, ``gamma_value=0.9``;
#: ``clip_ratio=0.2``; ``filter_accuracy=True`` with bounds 0.001 / 0.999: flat groups leave the
#: batch; no KL, entropy 0; n = 8, lr 1e-6, 128 / 64 prompts, ``max_response_length=3072``) and
#: ``verl/trainer/ppo/core_algos.py::compute_policy_loss`` (guided rows: $\rho/(\rho+\gamma)$,
#: unclipped; token mean; no dual clip). ``hint_clip_ratio(shaping="percentile", scope="micro_batch")`` takes
#: $\gamma$ per call, as the reference per micro-batch: **the gradient then depends on the
#: micro-batch size** when guided rows are split. rlobj's ``GuidedSampler`` samples a fixed share
#: of every hinted record's group with the hint instead of re-rolling all-failed groups.
guide_recipe = chain(drop_zero_variance_groups(), group_zscore(),
                     hint_clip_ratio(eps_low=0.2, eps_high=0.2, shaping="percentile", gamma=0.9,
                                     scope="micro_batch"), token_mean(),
                     name="guide_recipe")

#: GHPO (arXiv 2507.10628). Reference: hkgc-1/GHPO @ af0a7dd, ``recipes/Qwen2.5-Math-7B/ghpo/
#: config_ghpo.yaml`` (``beta: 0.0``, ``num_generations: 8``, ``learning_rate: 1.0e-06``,
#: ``temperature: 1.0``, ``max_completion_length: 2048``, ``scale_rewards: true``,
#: ``reward_weights`` accuracy 1.0 / format 0.5, ``hint_ratio: 0.5``) and ``src/ghpo/
#: ghpo_trainer.py`` / ``ghpo_config.py`` (TRL's GRPO loss: advantages $(r - \bar r)/(\mathrm{std}
#: + 10^{-4})$, clip ``epsilon=0.2``, ``loss_type="bnpo"``: token mean of each device batch). The
#: reference has **no supervised loss**: its guidance puts 25 / 50 / 75 % of the reference
#: solution into the *prompt* of questions whose rollouts all fail and trains GRPO on those
#: prompts. That prompt refinement is a rollout step rlobj does not have; the recipe is the
#: objective and settings around it.
ghpo_recipe = chain(group_zscore(eps=1e-4), clip_ratio(eps_low=0.2, eps_high=0.2), token_mean(), name="ghpo_recipe")

#: AEPO / InfiGUI-G1 (Liu et al., arXiv 2508.05731). Reference: InfiXAI/InfiGUI-G1 @ 22208e4,
#: ``recipe/infigui-g1/run_7b.sh`` (``adv_estimator=rloo``: leave-one-out baseline, **not** GRPO;
#: ``custom_reward_function.name=aer_gui_reward_function``; ``clip_ratio_high=0.4``; no KL,
#: entropy 0; n = 8, lr 1e-6, temperature 1.0, 128 / 128 prompts, ``max_response_length=1024``),
#: ``recipe/infigui-g1/reward_fn.py`` (format 1 + 1/sqrt(N k) on a hit, -1/N on a miss, -1 for
#: a bad format) and ``verl/trainer/config/actor/actor.yaml`` (clip low 0.2, dual clip 3,
#: token-mean).
aepo_recipe = chain(aepo_reward(), leave_one_out(), clip_ratio(eps_low=0.2, eps_high=0.4, dual_clip=3.0), token_mean(),
                    name="aepo_recipe")


#: WirelessMathLM (Li et al., arXiv 2509.23219). **Paper only**: the authors' repository
#: LiXin97/WirelessMathLM @ 374e959 holds the README and the project page, no training code. The
#: project page's "Training Configuration" (``index.html``) and the README §Methodology state:
#: GRPO with binary verification rewards from the base model (no SFT), lr 1e-6, temperature 1.0
#: in training, KL penalty beta = 0.01, 40 epochs (240 steps). The KL estimator, the PPO clip,
#: the aggregation, the group size and the batch sizes are not stated there: the recipe uses the
#: ``grpo`` preset's clip 0.2 and seq-mean-token-mean and a k3 KL in the loss, each row marked
#: unverified.
wirelessmath_recipe = chain(group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.2), k3_kl(beta=0.01),
                            seq_mean_token_mean(), name="wirelessmath_recipe")


SEED_RECIPES: tuple[Recipe, ...] = (
    Recipe("rl_plus_recipe", "RL-PLUS, arXiv 2508.00222", "YihongDong/RL-PLUS @ eb4aa4d", rl_plus_recipe, (
        _s("advantages", _agg(group_mean_baseline), "group_mean_baseline",
           "exp_scripts/train_RL-PLUS.sh: algorithm.grpo_use_std=False"),
        _s("external-token weight gamma", FromChain(mis_exploration_pg, "gamma"), 0.5,
           "rlplus_core_alg.py: (1 - exp(log_prob))**(0.5)"),
        _s("on-policy clip", FromChain(mis_exploration_pg, "clip"), False, "train_RL-PLUS.sh: loss_remove_clip=True"),
        _s("MIS ratio clamp", FromChain(mis_exploration_pg, "mis_max"), None,
           "rlplus_ppo_trainer.yaml: off_policy_max_clip=-1 (off)"),
        _s("policy aggregation", _agg(constant_normalizer), "constant_normalizer",
           "train_RL-PLUS.sh: loss_remove_token_mean=True (sum / padded length)"),
        _s("policy normaliser per sequence", FromChain(constant_normalizer, "per_sequence"), False,
           "rlplus_core_alg.py: (pg_losses * eos_mask).sum() / eos_mask.shape[-1]"),
        _s("normaliser constant (padded length)", FromChain(constant_normalizer, "max_tokens"), 8192,
           "train_RL-PLUS.sh: data.max_response_length"),
        _s("entropy bonus", FromChain(entropy_bonus, "coef"), 0.001, "train_RL-PLUS.sh: entropy_coeff"),
        _s("entropy aggregation", FromChain(entropy_bonus, "aggregation"), "token_mean",
           "rlplus_actor.py: masked_mean(entropy, response_mask)"),
        _s("accumulation over micro-batches / ranks", "global counts (micro-batch law)",
           "micro-batch losses added, ranks averaged", "rlplus_actor.py: loss = policy_loss / gradient_accumulation (= 1)",
           "the reference's total depends on its dynamic micro-batches and the rank count"),
        _s("KL", "none", "none", "train_RL-PLUS.sh: use_kl_loss=False, kl_coef=0"),
        _s("external demonstrations per group", "1 of 8", "1 of 8", "train_RL-PLUS.sh: n_prefix=1, prefix ratio 1.0"),
        *_run("train_RL-PLUS.sh", 8, 1.0, 1e-6, 8192, "128 / 64"),
    )),
    Recipe("canon_recipe", "CANON, arXiv 2509.23962", "biuboomc/CANON @ 7d6f814", canon_recipe, (
        _s("metric", FromChain(canon_advantage, "metric"), "entropy",
           "README: adv_estimator=dr_entropy_token_budget (CANON based on entropy)",),
        _s("inter-group weight mu", FromChain(canon_advantage, "mu"), 1.0, "scripts/setups.sh: _lambda"),
        _s("asymmetry alpha", FromChain(canon_advantage, "alpha"), 1.0, "scripts/setups.sh: alpha"),
        _s("bias beta", FromChain(canon_advantage, "beta"), 0.0,
           "core_algos.py: beta=0.0 default (config key not found; unverified)"),
        _s("advantage divisor", FromChain(canon_advantage, "norm_const"), 8192.0,
           "dapo_ray_trainer.py: max_length = data.max_response_length under seq-mean-token-sum"),
        *_clip("verl/trainer/ppo/config/dapo_trainer.yaml", 0.2, 0.28, 3.0, high_at="scripts/setups.sh: clip_high"),
        _s("aggregation", _agg(seq_mean_token_sum), "seq_mean_token_sum", "scripts/setups.sh: loss_agg_mode"),
        _s("KL / entropy", "none", "none", "scripts/setups.sh: use_kl_loss=False, entropy_coeff=0.0"),
        *_run("scripts/setups.sh", 16, 1.0, keys=RECIPE_SCRIPT_KEYS),
        _s("lr", 1e-6, 1e-6, "scripts/setups.sh: actor.optim.lr (weight_decay 0.1)"),
        *_run("scripts/setups.sh", max_new_tokens=8192, prompts="512 / 32", keys=RECIPE_SCRIPT_KEYS),
    )),
    Recipe("laser_recipe", "LaSeR, arXiv 2510.14943", "RUCBM/LaSeR @ 48996f7", laser_recipe, (
        _s("self-reward loss coefficient", FromChain(self_reward_mse, "coef"), 0.1,
           "run_qwen2_5_7b.sh: self_reward_loss_coef"),
        _s("beta_v", FromChain(self_reward_mse, "beta_v"), 0.1, "run_qwen2_5_7b.sh: self_reward_kl_coef"),
        _s("constant c", FromChain(self_reward_mse, "c"), -23.0, "run_qwen2_5_7b.sh: ref_model_log_ratio_constant"),
        _s("class-balanced weights", FromChain(self_reward_mse, "balanced"), True,
           "run_qwen2_5_7b.sh: self_reward_loss_balanced"),
        _s("self-reward loss scope", FromChain(self_reward_mse, "scope"), "micro_batch",
           "dp_actor.py: (... * reweighting_factor).mean() per micro-batch"),
        _s("advantage mixing tau", FromChain(self_reward_advantage, "tau"), 0.1,
           "run_qwen2_5_7b.sh: self_rewarding_advantages_integration_coef"),
        _s("std floor", FromChain(self_reward_advantage, "std_floor"), 0.1,
           "run_qwen2_5_7b.sh: self_rewarding_advantages_filtering_threshold"),
        _s("self-reward z-score epsilon", FromChain(self_reward_advantage, "eps_self"), 0.0,
           "ray_trainer.py: (s - mean) / std"),
        _s("GRPO z-score epsilon", FromChain(self_reward_advantage, "eps"), 1e-6,
           "core_algos.py: compute_grpo_outcome_advantage epsilon"),
        _s("advantage mixing starts", "step 0", "after 200 + 200 steps",
           "run_qwen2_5_7b.sh: reasoning_warmup_steps, self_rewarding_warmup_steps",
           "the recipe is the post-warm-up objective; use group_zscore before"),
        *_clip("verl/trainer/config/actor/actor.yaml", 0.2, 0.2, 3.0, token_mean),
        _s("KL / entropy", "none", "none", "run_qwen2_5_7b.sh: kl_loss_coef=0.0, entropy_coeff=0"),
        *_run("run_qwen2_5_7b.sh", 8, 1.0, 1e-6, 8192, "128 / 128"),
    )),
    Recipe("rlpr_recipe", "RLPR, arXiv 2506.18254", "OpenBMB/RLPR @ 8490fca", rlpr_recipe, (
        _s("format weight f", FromChain(rlpr_reward, "format_weight"), 0.1, "main_ppo.py: reward_model.format_coefficient default 0.1;"
           " prob.py: (1 - f) * shaped(scoreB - scoreA) + f * format"),
        _s("probability aggregate", FromChain(rlpr_reward, "aggregate"), "mean_prob",
           "reproduce_qwen.sh: compute_score_name=mean_exp_log_softmax"),
        _s("shaping", FromChain(rlpr_reward, "clip_at_zero"), True, "reproduce_qwen.sh: shaping_function_name=threshold_0"),
        _s("debiasing", FromChain(rlpr_reward, "debias"), True, "ray_trainer.py: scoreB - scoreA"),
        _s("advantages", _agg(group_zscore), "group_zscore", "reproduce_qwen.sh: adv_estimator=grpo"),
        *_clip("reproduce_qwen.sh", 0.2, 0.27),
        _s("dual clip", DUAL, None, "core_algos.py: compute_policy_loss has none"),
        _s("entropy bonus", FromChain(entropy_bonus, "coef"), 0.001, "ppo_trainer.yaml: entropy_coeff (not overridden)"),
        _s("aggregation", _agg(token_mean), "token_mean", "dp_actor.py: loss_agg_mode default token-mean"),
        _s("KL", "none", "none", "reproduce_qwen.sh: kl_loss_coef=0"),
        _s("std filter beta", 0.5, 0.5, "reproduce_qwen.sh: std_filter_beta (rlobj: std_filter(beta=0.5))"),
        _s("repetition penalty", "not in the recipe", "on", "reproduce_qwen.sh: repetition_penalty=True",
           "add it as a separate reward"),
        *_run("reproduce_qwen.sh", 8, 1.0, 1e-6, 3072, "768 / 192", files={"temperature": "ppo_trainer.yaml"}),
    )),
    Recipe("co_reward_recipe", "Co-rewarding, arXiv 2508.00410", "tmlr-group/Co-rewarding @ 6c60ea4", co_reward_recipe, (
        _s("advantages", _agg(group_zscore), "group_zscore", "ray_trainer.py: CO_REWARD -> compute_grpo_outcome_advantage"),
        *_clip("Co-rewarding-I/verl/trainer/config/ppo_trainer.yaml", 0.2, 0.2, 3.0, token_mean),
        _s("KL (k3, in the loss)", FromChain(kl_penalty, "beta"), 0.005,
           "run_corewarding-I.sh: kl_loss_coef, kl_loss_type=low_var_kl"),
        _s("entropy", "none", "none", "run_corewarding-I.sh: entropy_coeff=0"),
        *_run("run_corewarding-I.sh", 8, 1.0, 3e-6, 3072, "128 / 128", files={"temperature": "ppo_trainer.yaml"}),
    )),
    Recipe("sar_recipe", "Self-Aligned Reward, arXiv 2509.05489",
           "amazon-science/Self-Aligned-Reward-Towards_Effective_and_Efficient_Reasoners @ 08892d0", sar_recipe, (
        _s("SA reward weight alpha", FromChain(self_aligned_reward, "alpha"), 0.2, "scripts/SA-grpo-1.7B.sh: reward_factors=[1,0.2]"),
        _s("perplexity comparison", FromChain(self_aligned_reward, "use_log"), False,
           "efficiency_reward.py: compute_ppl_qa_log (use_log default False)"),
        _s("advantages", _agg(group_mean_baseline), "group_mean_baseline", "SA-grpo-1.7B.sh: norm_adv_by_std_in_grpo=False"),
        *_clip("verl/trainer/config/ppo_trainer.yaml", 0.2, 0.2, 3.0),
        _s("aggregation", _agg(constant_normalizer), "constant_normalizer", "SA-grpo-1.7B.sh: loss_agg_mode=seq-mean-token-sum-norm"),
        _s("normaliser", "sum / (N_seq * 4096)", "micro-batch sum / 4096 / accumulation steps",
           "core_algos.py: agg_loss seq-mean-token-sum-norm; dp_actor.py",
           "the reference's total is rlobj's times the rows of a micro-batch per GPU"),
        _s("KL (k3, in the loss)", FromChain(kl_penalty, "beta"), 0.001, "SA-grpo-1.7B.sh: kl_loss_coef, low_var_kl"),
        *_run("SA-grpo-1.7B.sh", 6, 1.0, 1e-6, 4096, files={"temperature": "ppo_trainer.yaml"}),
        _s("prompts per step / mini-batch", "128 / 64", "128 / 64", "SA-grpo-1.7B.sh: sampling_bsz, gradient_bsz"),
    )),
    Recipe("noisy_rlvr_recipe", "RLVR with Verifiable yet Noisy Rewards, arXiv 2510.00915",
           "paper only (caixq1996/noisy-RLVR announced, not available)", noisy_rlvr_recipe, (
        _s("false-positive rate rho0", FromChain(backward_correction, "rho0"), 0.1, "paper App. E.3 (synthetic noise)"),
        _s("false-negative rate rho1", FromChain(backward_correction, "rho1"), 0.2, "paper App. E.3 (synthetic noise)"),
        _s("baseline", _agg(leave_one_out), "leave_one_out", "paper App. B.2: leave-one-out, no group std"),
        _s("KL", FromChain(kl_penalty, "beta"), 0.001, "paper App. E.3: KL beta 1e-3 (estimator not stated)",
           "estimator and placement not stated; k3 in the loss here"),
        _s("clip eps_low / eps_high", f"{EPS_LOW.read(noisy_rlvr_recipe)} / {EPS_HIGH.read(noisy_rlvr_recipe)}",
           "not stated", "paper (no value found)", "unverified: PPO's 0.2"),
        _s("aggregation", _agg(token_mean), "not stated", "paper (no value found)", "unverified: token mean"),
        _s("group_size", 8, 8, "paper App. E.3: G = 8"),
        _s("lr", 3e-6, 3e-6, "paper App. E.3"),
        _s("max_new_tokens", 3072, 3072, "paper App. E.3: T_max"),
    )),
    Recipe("guide_recipe", "Adaptive Guidance (Guide), arXiv 2506.13923",
           "vaskar-open-source-research/guide_rl @ 2f27715", guide_recipe, (
        _s("flat groups", FromChain(drop_zero_variance_groups, "on"), "rewards",
           "guide_grpo_qwen.sh: filter_accuracy=True, accuracy bounds 0.001 / 0.999"),
        _s("advantages", _agg(group_zscore), "group_zscore", "ppo_trainer.yaml: algorithm.grpo.use_std=true"),
        _s("clip eps_low (plain rows)", FromChain(hint_clip_ratio, "eps_low"), 0.2, "guide_grpo_qwen.sh: clip_ratio"),
        _s("clip eps_high (plain rows)", FromChain(hint_clip_ratio, "eps_high"), 0.2, "guide_grpo_qwen.sh: clip_ratio"),
        _s("guided-row shaping", FromChain(hint_clip_ratio, "shaping"), "percentile",
           "guide_grpo_qwen.sh: apply_off_policy_shaping=True, gamma_strategy=percentile"),
        _s("shaping level gamma", FromChain(hint_clip_ratio, "gamma"), 0.9, "guide_grpo_qwen.sh: gamma_value"),
        _s("percentile over", FromChain(hint_clip_ratio, "scope"), "micro_batch",
           "core_algos.py: compute_policy_loss, one quantile per call (per micro-batch)"),
        _s("quantile over", "valid tokens of the guided rows", "every position of the guided rows",
           "core_algos.py: ratio_safe[off_policy_mask] with a [B] row mask",
           "the reference's quantile includes padding positions"),
        _s("aggregation", _agg(token_mean), "token_mean", "core_algos.py: masked_mean (loss_remove_token_mean false)"),
        _s("hinted rollouts", "GuidedSampler: a fixed share of each hinted group", "whole group re-rolled when all fail",
           "guide_grpo_qwen.sh: reroll_with_hints=True, reroll_threshold=0.001",
           "rlobj's sampler is a one-pass simplification"),
        _s("KL / entropy", "none", "none", "guide_grpo_qwen.sh: use_kl_loss=False, entropy_coeff=0.000"),
        *_run("guide_grpo_qwen.sh", 8, 1.0, 1e-6, 3072, "128 / 64", files={"temperature": "ppo_trainer.yaml"}),
    )),
    Recipe("ghpo_recipe", "GHPO, arXiv 2507.10628", "hkgc-1/GHPO @ af0a7dd", ghpo_recipe, (
        _s("advantages", _agg(group_zscore), "group_zscore", "config_ghpo.yaml: scale_rewards: true"),
        _s("z-score epsilon", FromChain(group_zscore, "eps"), 1e-4, "ghpo_trainer.py: advantages / (std + 1e-4)"),
        _s("clip eps_low / eps_high", f"{EPS_LOW.read(ghpo_recipe)} / {EPS_HIGH.read(ghpo_recipe)}", "0.2 / 0.2",
           "ghpo_config.py: epsilon=0.2, epsilon_high=None"),
        _s("aggregation", _agg(token_mean), "token_mean", "ghpo_config.py: loss_type='bnpo'"),
        _s("normaliser scope", "global (micro-batch law)", "each device batch",
           "ghpo_trainer.py: bnpo divides by the device batch's tokens",
           "TRL bnpo normalises per device batch"),
        _s("supervised loss", "none", "none", "ghpo_trainer.py: _compute_loss has only the clipped surrogate"),
        _s("KL", "none", "none", "config_ghpo.yaml: beta: 0.0"),
        _s("adaptive prompt refinement", "not in rlobj", "25 / 50 / 75 % solution prefix in the prompt",
           "ghpo_trainer.py: inputs_hint_25/50/75 for all-failed questions; config: hint_ratio 0.5",
           "a rollout step rlobj does not have"),
        _s("reward weights", "the scorer's", "accuracy 1.0 / format 0.5", "config_ghpo.yaml: reward_weights",
           "set by the scorer, not the objective"),
        _s("group_size", 8, 8, "config_ghpo.yaml: num_generations"),
        _s("temperature", 1.0, 1.0, "config_ghpo.yaml: temperature"),
        _s("lr", 1e-6, 1e-6, "config_ghpo.yaml: learning_rate"),
        _s("max_new_tokens", 2048, 2048, "config_ghpo.yaml: max_completion_length"),
    )),
    Recipe("aepo_recipe", "InfiGUI-G1 (AEPO), arXiv 2508.05731", "InfiXAI/InfiGUI-G1 @ 22208e4", aepo_recipe, (
        _s("format reward", FromChain(aepo_reward, "format_reward"), 1.0, "reward_fn.py: fmt_ratio * format_reward (1.0)"),
        _s("invalid-format reward", FromChain(aepo_reward, "invalid_reward"), -1.0, "reward_fn.py: score -1.0"),
        _s("advantages", _agg(leave_one_out), "leave_one_out", "run_7b.sh: adv_estimator=rloo"),
        *_clip("verl/trainer/config/actor/actor.yaml", 0.2, 0.4, 3.0, token_mean, high_at="run_7b.sh: clip_ratio_high"),
        _s("KL / entropy", "none", "none", "run_7b.sh: use_kl_loss=False, entropy_coeff=0"),
        *_run("run_7b.sh", 8, 1.0, 1e-6, 1024, "128 / 128"),
    )),
    Recipe("wirelessmath_recipe", "WirelessMathLM, arXiv 2509.23219",
           "paper only (LiXin97/WirelessMathLM @ 374e959: README and project page, no training code)",
           wirelessmath_recipe, (
        _s("advantages", _agg(group_zscore), "group_zscore", "paper only, README §Methodology: GRPO, binary verification rewards"),
        _s("KL beta", FromChain(kl_penalty, "beta"), 0.01, "paper only, project page (index.html) Training Configuration: KL penalty 0.01"),
        _s("KL estimator / placement", "k3 in the loss", "not stated", "paper only (no value found)", "unverified: k3 in the loss"),
        _s("clip eps_low / eps_high", f"{EPS_LOW.read(wirelessmath_recipe)} / {EPS_HIGH.read(wirelessmath_recipe)}",
           "not stated", "paper only (no value found)", "unverified: the grpo preset's 0.2"),
        _s("aggregation", _agg(seq_mean_token_mean), "not stated", "paper only (no value found)",
           "unverified: the grpo preset's seq-mean-token-mean"),
        _s("supervised warm-start", "none", "none", "paper only, README §Key Contributions: from base checkpoints, no SFT"),
        _s("temperature", 1.0, 1.0, "paper only, project page Training Configuration: 1.0 (training)"),
        _s("lr", 1e-6, 1e-6, "paper only, project page Training Configuration"),
        _s("training length", "40 epochs (240 steps)", "40 epochs (240 steps)", "paper only, project page Training Configuration"),
        _s("group_size / prompts per step", "not stated", "not stated", "paper only (no value found)", "unverified: set them in the run"),
    )),
)
