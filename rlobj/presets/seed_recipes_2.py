r"""Faithful recipes, continued further: seed papers whose authors' code was found later (VSRM,
PPR).

Same contract as :mod:`rlobj.presets.recipes` (whose ``RECIPES`` table holds these recipes as
well, merged by :mod:`rlobj.presets`): each chain is the paper's whole objective, each
:class:`~rlobj.presets.recipes.Setting` names the reference's value and the file and keys that
set it. Both references below train PPO with a learned critic (GAE); rlobj has no critic, so
their recipes whiten the token returns over the batch instead (REINFORCE++'s estimator, with
verl's Bessel-corrected ``masked_whiten``): that row says so, every other row is the reference's.
"""

from rlobj.algebra.aggregation import token_mean
from rlobj.algebra.term import chain
from rlobj.presets.recipes import DUAL, EPS_HIGH, EPS_LOW, FromChain, Recipe, _agg, _clip, _run, _s
from rlobj.terms.advantages import batch_whiten
from rlobj.terms.divergences import kl_penalty
from rlobj.terms.regularizers import entropy_bonus
from rlobj.terms.rewards import ppr_renorm, vsrm_step_reward
from rlobj.terms.surrogates import clip_ratio

__all__ = ["SEED_RECIPES_2", "vsrm_recipe", "ppr_recipe"]

CRITIC = "rlobj has no critic: batch-whitened token returns (REINFORCE++ estimator) instead"

# ------------------------------------------------------------------------------------------------
#: VSRM (Yue et al., arXiv 2508.10293). Reference: 1benwu1/VSRM-Efficient-LRMs @ e4e928b,
#: ``verl/workers/rollout_postprocess.py::compute_step_reward`` (``gamma = 0.7``,
#: ``MAX_LOOKAHEAD = 4``, flat below ``1e-5``; sub-rollouts: ``n2`` answers per prefix,
#: ``max_tokens=768``, split at cue words at least 1000 characters into the thinking and 400
#: apart), ``verl/workers/reward_manager/naive.py`` (step rewards, then the outcome written on
#: the last valid token) and ``run_ppo_ju.sh`` (``algorithm.adv_estimator=gae`` with a critic at
#: lr 1e-5, ``rollout.n=1``, ``rollout.n2=5``, temperature 0.6, top-p 0.95, lr 1e-6,
#: ``train_batch_size=256``, ``ppo_mini_batch_size=128``, ``max_response_length=7424``; no KL:
#: ``use_kl_in_reward`` and ``use_kl_loss`` stay False) with ``verl/trainer/config/
#: ppo_trainer.yaml`` (clip 0.2 / 0.2, dual clip 3, token-mean, entropy 0, ``gamma = lam = 1``).
#: rlobj replaces the critic by ``batch_whiten(unbiased=True)`` (the fork's
#: ``reinforce_plus_plus`` estimator: returns to go whitened with Bessel's correction).
vsrm_recipe = chain(vsrm_step_reward(lookahead=4, gamma=0.7, flat=1e-5), batch_whiten(unbiased=True),
                    clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=3.0), token_mean(), name="vsrm_recipe")

#: PPR (Xu et al., arXiv 2509.25598). Reference: Zhuohao-Li/ppr @ 4b496fa (a Search-R1 fork),
#: ``verl/trainer/main_ppo.py::RewardManager`` (ReNorm: every turn end but the answer's gets
#: ``score / max_score + orm - beta``, the outcome stays on the last token),
#: ``examples/train_3b.sh`` (``process_reward_config.renorm_beta=1.0``,
#: ``algorithm.adv_estimator=gae`` with a critic at lr 1e-5, ``algorithm.kl_ctrl.kl_coef=0.001``
#: (``train_7b.sh``: 0.0), lr 1e-6 with ``lr_warmup_steps_ratio=0.285``,
#: ``train_batch_size=512``, ``ppo_mini_batch_size=256``, ``n_agent=1``, temperature 1,
#: ``max_response_length=500`` per turn, ``max_turns=2``, ``state_masking=true``),
#: ``verl/trainer/config/ppo_trainer.yaml`` (``clip_ratio: 0.2``, ``entropy_coeff: 0.001``,
#: ``kl_penalty: kl``, fixed controller, ``use_kl_loss: False`` so the KL goes into the reward,
#: ``gamma = lam = 1``) and ``ray_trainer.py::apply_kl_penalty`` (token rewards minus
#: ``beta * (old_log_prob - ref_log_prob)``). The loss code is Search-R1's
#: (PeterGriffinJin/Search-R1 @ a14dc3a ``core_algos.py::compute_policy_loss``: clip 0.2, no dual
#: clip, token mean; ``dp_actor.py``: ``pg_loss - entropy_coeff * masked_mean(entropy)``, each
#: micro-batch's loss divided by the accumulation steps).
ppr_recipe = chain(kl_penalty(beta=0.001, estimator="k1", placement="reward", clamp=False), ppr_renorm(beta=1.0),
                   batch_whiten(unbiased=True), clip_ratio(eps_low=0.2, eps_high=0.2), entropy_bonus(coef=0.001),
                   token_mean(), name="ppr_recipe")


SEED_RECIPES_2: tuple[Recipe, ...] = (
    Recipe("vsrm_recipe", "VSRM, arXiv 2508.10293", "1benwu1/VSRM-Efficient-LRMs @ e4e928b", vsrm_recipe, (
        _s("look-ahead window W", FromChain(vsrm_step_reward, "lookahead"), 4,
           "rollout_postprocess.py: compute_step_reward MAX_LOOKAHEAD"),
        _s("look-ahead decay gamma", FromChain(vsrm_step_reward, "gamma"), 0.7, "compute_step_reward: gamma"),
        _s("flat gain below", FromChain(vsrm_step_reward, "flat"), 1e-5, "compute_step_reward: abs(delta) < 1e-5"),
        _s("step reward token", "each step end the provider marks", "the split position (the step's first token)",
           "compute_step_reward: step_reward_tensors[i, token_idx]",
           "placement is the provider's (ReasoningSteps marks step ends)"),
        _s("steps", "ReasoningSteps: split at a delimiter", "cue words >= 1000 chars in, >= 400 apart",
           "rollout_postprocess.py: high_entropy_words, min_think_chars, min_split_interval",
           "rlobj's provider splits at one delimiter"),
        _s("answers per prefix", "ReasoningSteps samples", 5, "run_ppo_ju.sh: rollout.n2=5", "set it in the provider"),
        _s("advantages", _agg(batch_whiten), "GAE (critic, gamma = lam = 1)",
           "run_ppo_ju.sh: algorithm.adv_estimator=gae", CRITIC),
        *_clip("verl/trainer/config/ppo_trainer.yaml", 0.2, 0.2, 3.0),
        _s("log-ratio clamp", 20.0, "none", "core_algos.py: compute_policy_loss",
           "equal unless |log ratio| > 20"),
        _s("aggregation", _agg(token_mean), "token_mean", "ppo_trainer.yaml: loss_agg_mode"),
        _s("KL / entropy", "none", "none", "ppo_trainer.yaml: use_kl_loss False, use_kl_in_reward False, entropy_coeff 0"),
        *_run("run_ppo_ju.sh", 1, 0.6),
        _s("top_p", "run setting", 0.95, "run_ppo_ju.sh: rollout.top_p", "not prescribed: set rollout.top_p in the run"),
        *_run("run_ppo_ju.sh", lr=1e-6, max_new_tokens=7424, prompts="256 / 128"),
    )),
    Recipe("ppr_recipe", "PPR (Hybrid Reward Normalization), arXiv 2509.25598", "Zhuohao-Li/ppr @ 4b496fa",
           ppr_recipe, (
        _s("ReNorm beta", FromChain(ppr_renorm, "beta"), 1.0, "examples/train_3b.sh: process_reward_config.renorm_beta"),
        _s("process reward", "score / max score at turn ends but the last", "score / max score at turn ends but the last",
           "process_reward.py: write_tag_rewards; main_ppo.py: turns but the last are judged"),
        _s("KL (k1, in the reward)", FromChain(kl_penalty, "beta"), 0.001,
           "train_3b.sh: algorithm.kl_ctrl.kl_coef (train_7b.sh: 0.0); ppo_trainer.yaml: kl_penalty kl"),
        _s("KL placement", FromChain(kl_penalty, "placement"), "reward", "ray_trainer.py: apply_kl_penalty (use_kl_loss False)"),
        _s("advantages", _agg(batch_whiten), "GAE (critic, gamma = lam = 1)", "train_3b.sh: algorithm.adv_estimator=gae",
           CRITIC),
        _s("clip eps_low / eps_high", f"{EPS_LOW.read(ppr_recipe)} / {EPS_HIGH.read(ppr_recipe)}", "0.2 / 0.2",
           "ppo_trainer.yaml: actor.clip_ratio"),
        _s("dual clip c", DUAL, None, "Search-R1 core_algos.py: compute_policy_loss (no dual clip)"),
        _s("log-ratio clamp", 20.0, "none", "Search-R1 core_algos.py: compute_policy_loss",
           "equal unless |log ratio| > 20"),
        _s("entropy bonus", FromChain(entropy_bonus, "coef"), 0.001, "ppo_trainer.yaml: actor.entropy_coeff"),
        _s("aggregation", _agg(token_mean), "token_mean", "Search-R1 dp_actor.py: masked_mean per micro-batch"),
        _s("normaliser scope", "global (micro-batch law)", "each micro-batch, / accumulation steps",
           "Search-R1 dp_actor.py: loss = policy_loss / gradient_accumulation",
           "the reference's token mean is per micro-batch"),
        _s("observation tokens", "out of the loss", "out of the loss",
           "train_3b.sh: actor.state_masking=true (rlobj: the multi-turn sampler)"),
        _s("group_size", 1, 1, "train_3b.sh: rollout.n_agent=1 (ppo_trainer.yaml: rollout.n 1)"),
        _s("temperature", 1.0, 1.0, "train_3b.sh: rollout.temperature"),
        _s("top_p", "run setting", 0.95, "ppo_trainer.yaml: rollout.top_p", "not prescribed: set rollout.top_p in the run"),
        _s("lr", 1e-6, 1e-6, "train_3b.sh: actor.optim.lr"),
        _s("lr warm-up", "run setting", "28.5 % of the steps", "train_3b.sh: actor.optim.lr_warmup_steps_ratio=0.285",
           "not prescribed: set a scheduler in the run"),
        _s("max_new_tokens", 500, 500, "train_3b.sh: data.max_response_length (per turn, max_turns 2)"),
        _s("prompts per step / mini-batch", "512 / 256", "512 / 256", "train_3b.sh: train_batch_size, ppo_mini_batch_size"),
    )),
)
