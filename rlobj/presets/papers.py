r"""Paper recipes as chains of primitives. ``print(dapo)`` shows the chain; edit one with
``>>`` (add a term) or ``.replace(old_type, new_term)`` (swap one).

Each recipe keeps the defaults of the paper's reference code; where a recipe needs a
deployment constant (the generation budget of ``dr_grpo`` and ``dapo``), the paper's value is
used and the docstring says how to change it.
"""

from rlobj.algebra.aggregation import (
    constant_normalizer,
    seq_mean_token_mean,
    seq_mean_token_sum,
    token_mean,
)
from rlobj.algebra.term import chain
from rlobj.terms.advantages import batch_whiten, group_mean_baseline, group_zscore, leave_one_out
from rlobj.terms.divergences import kl_penalty
from rlobj.terms.masks import drop_zero_variance_groups
from rlobj.terms.rewards import overlong_penalty
from rlobj.terms.surrogates import (
    clip_ratio,
    clipped_weight_pg,
    geometric_clip,
    reinforce,
    sequence_clip,
    soft_gate,
)

__all__ = ["grpo", "dr_grpo", "dapo", "gspo", "cispo", "sapo", "gmpo", "rloo", "reinforce_pp"]

#: GRPO (Shao et al., DeepSeekMath, arXiv 2402.03300, Eq. 3): group z-score advantages
#: (eps 1e-6, Bessel std), PPO clip 0.2, per-sequence token mean. The paper also adds a k3
#: KL to the reference with beta 0.04: ``grpo >> k3_kl(0.04)``; most RLVR recipes since
#: (DAPO, Dr. GRPO, verl's examples) drop or shrink it, so it is not in the preset.
grpo = chain(group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.2), seq_mean_token_mean(), name="grpo")

#: Dr. GRPO (Liu et al., arXiv 2503.20783, Sec. 3.1): the two GRPO biases removed: no std
#: division (``group_mean_baseline``) and a constant normaliser instead of 1/|y_i|
#: (``constant_normalizer``; oat's recipe uses the generation budget 4096: replace it with
#: yours via ``dr_grpo.replace(constant_normalizer, constant_normalizer(L))``). No KL.
dr_grpo = chain(group_mean_baseline(), clip_ratio(eps_low=0.2, eps_high=0.2),
                constant_normalizer(max_tokens=4096), name="dr_grpo")

#: DAPO (Yu et al., arXiv 2503.14476; verl ``recipe/dapo``): dynamic sampling on the
#: **accuracy** (zero-variance groups of ``extras["accuracy"]`` masked out of the loss, as verl's
#: ``filter_groups.metric: acc``, not of the length-penalised reward; resampling is the ``dynamic_sampling`` transform of the trainer,
#: which redraws the step's own prompts, not new ones as DAPO does), overlong reward shaping
#: (20480 / 4096) with factor 0.5 (verl's ``overlong_penalty_factor`` 1.0 applies to its +1/-1
#: rewards; on rlobj's 0/1 verifiers the same shaping relative to the reward range is 0.5, and
#: group z-scores of ``r + 0.5 p`` equal those of ``(2r - 1) + p``), clip-higher 0.2 / 0.28,
#: token-level loss, no KL.
dapo = chain(overlong_penalty(max_length=20480, buffer=4096, factor=0.5), drop_zero_variance_groups(on="accuracy"),
             group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.28), token_mean(), name="dapo")

#: GSPO (Zheng et al., arXiv 2507.18071): sequence-level ratio clipped at 3e-4 / 4e-4,
#: GRPO advantages, per-sequence mean.
gspo = chain(group_zscore(), sequence_clip(eps_low=3e-4, eps_high=4e-4), seq_mean_token_mean(), name="gspo")

#: CISPO (MiniMax-M1, arXiv 2506.13585): clipped, stop-gradient IS weight times the REINFORCE
#: gradient on every token; GRPO advantages; token-level loss.
cispo = chain(group_zscore(), clipped_weight_pg(eps_low=1.0, eps_high=0.28), token_mean(), name="cispo")

#: SAPO (Qwen, arXiv 2511.20347): soft sigmoid gate (tau 1.0 / 1.05), GRPO advantages,
#: per-sequence token mean (verl's SAPO policy loss and TRL's ``loss_type="sapo"`` average each
#: response's tokens, then the responses).
sapo = chain(group_zscore(), soft_gate(tau_pos=1.0, tau_neg=1.05), seq_mean_token_mean(), name="sapo")

#: GMPO (Zhao et al., arXiv 2507.20673): geometric mean of token ratios, clipped in log space
#: at 0.4, GRPO advantages, one loss per sequence.
gmpo = chain(group_zscore(), geometric_clip(eps=0.4), seq_mean_token_mean(), name="gmpo")

#: RLOO (Ahmadian et al., arXiv 2402.14740): leave-one-out baseline, REINFORCE on the whole
#: sequence log-probability (per-token losses summed per sequence, averaged over sequences).
rloo = chain(leave_one_out(), reinforce(), seq_mean_token_sum(), name="rloo")

#: REINFORCE++ (Hu, arXiv 2501.03262): k1 KL to the reference folded into the token rewards
#: (beta 0.01, OpenRLHF ``init_kl_coef``), returns whitened over the batch, PPO clip 0.2,
#: token-level loss.
reinforce_pp = chain(kl_penalty(beta=0.01, estimator="k1", placement="reward"), batch_whiten(),
                     clip_ratio(eps_low=0.2, eps_high=0.2), token_mean(), name="reinforce_pp")

# ---------------------------------------------------------------------------------------------
# seed methods II
# ---------------------------------------------------------------------------------------------
from rlobj.terms.divergences import k3_kl  # noqa: E402
from rlobj.terms.regularizers import entropy_bonus  # noqa: E402

__all__ += ["one_shot_rlvr"]

#: 1-shot RLVR (Wang et al., arXiv 2504.20571, NeurIPS'25; reference code
#: github.com/ypwang61/One-Shot-RLVR, verl ``dp_actor.py`` and ``ppo_trainer.yaml``): GRPO
#: advantages, PPO clip 0.2, an entropy bonus of 0.001 on the full-vocab token entropy (the
#: paper's "entropy loss, coefficient -0.001" in its loss convention: entropy is *raised*),
#: a k3 (``low_var_kl``) KL to the reference with beta 0.001, token-mean aggregation over the
#: response tokens. Sampling (temperature 0.6, 8 responses, the one example repeated to a batch
#: of 128) is the trainer's configuration, not part of the objective.
one_shot_rlvr = chain(group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.2), entropy_bonus(coef=0.001),
                      k3_kl(beta=0.001), token_mean(), name="one_shot_rlvr")
