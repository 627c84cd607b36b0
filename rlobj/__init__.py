"""rlobj: a functional, composable objective algebra for RL with verifiable rewards.

>>> from rlobj import grpo, k3_kl
>>> print(grpo >> k3_kl(0.04))
group_zscore(eps=1e-06, unbiased=True, singleton='error') >> clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=None, log_ratio_clamp=20.0) >> seq_mean_token_mean() >> kl_penalty(beta=0.04, estimator='k3', against='ref', placement='loss', straight_through=False, allow_reward_and_loss=False, clamp=True)
"""

from rlobj.algebra import (
    Chain,
    LossPart,
    Normalizer,
    Objective,
    Output,
    State,
    Term,
    chain,
    constant_normalizer,
    identity,
    length_weighted,
    seq_mean_token_mean,
    seq_mean_token_sum,
    token_mean,
)
from rlobj.ops.errors import RlobjBuildError, RlobjInputError
from rlobj.presets import cispo, dapo, dr_grpo, gmpo, grpo, gspo, reinforce_pp, rloo, sapo
from rlobj.terms import (
    abs_kl,
    adaptive_entropy,
    batch_whiten,
    clip_ratio,
    clip_rewards,
    clipped_weight_pg,
    delta_clip,
    drop_zero_variance_groups,
    entropy_bonus,
    geometric_clip,
    geometric_is_mask,
    gpg_scale,
    group_baseline_whiten,
    group_mean_baseline,
    group_mean_batch_std,
    group_zscore,
    k1_kl,
    k2_kl,
    k3_kl,
    kl_penalty,
    leave_one_out,
    length_penalty,
    length_weighted_baseline,
    masked_is,
    multi_reward_advantage,
    off_policy_sequence_mask,
    overlong_penalty,
    passk_advantage,
    reinforce,
    sequence_clip,
    soft_gate,
    top_entropy_mask,
    truncated_is,
    truncated_mask,
)

__all__ = [
    # algebra
    "Chain",
    "LossPart",
    "Normalizer",
    "Objective",
    "Output",
    "State",
    "Term",
    "chain",
    "identity",
    # aggregation
    "constant_normalizer",
    "length_weighted",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "token_mean",
    # errors
    "RlobjBuildError",
    "RlobjInputError",
    # advantages
    "batch_whiten",
    "gpg_scale",
    "group_baseline_whiten",
    "group_mean_baseline",
    "group_mean_batch_std",
    "group_zscore",
    "leave_one_out",
    "length_weighted_baseline",
    "multi_reward_advantage",
    "passk_advantage",
    # surrogates and IS corrections
    "clip_ratio",
    "clipped_weight_pg",
    "delta_clip",
    "geometric_clip",
    "geometric_is_mask",
    "masked_is",
    "reinforce",
    "sequence_clip",
    "soft_gate",
    "truncated_is",
    # divergences
    "abs_kl",
    "k1_kl",
    "k2_kl",
    "k3_kl",
    "kl_penalty",
    # regularizers
    "adaptive_entropy",
    "entropy_bonus",
    # masks
    "off_policy_sequence_mask",
    "top_entropy_mask",
    "truncated_mask",
    # reward shaping
    "clip_rewards",
    "drop_zero_variance_groups",
    "length_penalty",
    "overlong_penalty",
    # presets
    "cispo",
    "dapo",
    "dr_grpo",
    "gmpo",
    "grpo",
    "gspo",
    "reinforce_pp",
    "rloo",
    "sapo",
]

# seed methods I
from rlobj.terms import (  # noqa: E402
    backward_correction,
    fn_rate_from_appeals,
    forward_correction,
    mvar_advantage,
    nsr,
    pacs_loss,
    psr,
    self_reward_advantage,
    self_reward_mse,
    w_reinforce,
)

__all__ += [
    # seed methods I
    "backward_correction",
    "fn_rate_from_appeals",
    "forward_correction",
    "mvar_advantage",
    "nsr",
    "pacs_loss",
    "psr",
    "self_reward_advantage",
    "self_reward_mse",
    "w_reinforce",
]

# seed methods I (continued)
from rlobj.terms import (  # noqa: E402
    aepo_reward,
    brpo_advantage,
    canon_advantage,
    co_reward,
    conciseness_reward,
    gcpo_reward,
    ppr_renorm,
    rlpr_reward,
    self_aligned_reward,
    vsrm_step_reward,
)

__all__ += ["aepo_reward", "brpo_advantage", "canon_advantage", "co_reward", "conciseness_reward", "gcpo_reward", "ppr_renorm", "rlpr_reward", "self_aligned_reward", "vsrm_step_reward"]

# full-vocabulary terms (vocab view), Lp-Reg, SIREN, DPH-RL
from rlobj.terms import (  # noqa: E402
    dph_divergence,
    f_divergence,
    forward_kl,
    js_divergence,
    lp_reg,
    reverse_kl,
    sampled_entropy_bonus,
    siren,
)

__all__ += [
    # full-vocabulary terms, Lp-Reg, SIREN, DPH-RL
    "dph_divergence",
    "f_divergence",
    "forward_kl",
    "js_divergence",
    "lp_reg",
    "reverse_kl",
    "sampled_entropy_bonus",
    "siren",
]

# seed methods II: UloRL mastered-token mask, Clip-Cov / KL-Cov, the 1-shot RLVR preset
from rlobj.presets import one_shot_rlvr  # noqa: E402
from rlobj.terms import clip_cov, kl_cov, mastered_positive_mask  # noqa: E402

__all__ += [
    # seed methods II
    "clip_cov",
    "kl_cov",
    "mastered_positive_mask",
    "one_shot_rlvr",
]

# seed methods II: perception terms (PAPO, VPPO visual dependency, VOGUE)
from rlobj.terms import double_entropy, perception_kl, visual_dependency_score, vogue_bonus  # noqa: E402

__all__ += [
    # perception terms
    "double_entropy",
    "perception_kl",
    "visual_dependency_score",
    "vogue_bonus",
]

# seed methods I (remaining)
from rlobj.terms import (  # noqa: E402
    critique_token_advantage,
    dependency_advantage_shaping,
    hint_clip_ratio,
    mis_exploration_pg,
    pivotal_token_mask,
    token_hidden_reward,
)

__all__ += [
    # seed methods I (remaining)
    "critique_token_advantage",
    "dependency_advantage_shaping",
    "hint_clip_ratio",
    "mis_exploration_pg",
    "pivotal_token_mask",
    "token_hidden_reward",
]

from rlobj.terms import sft  # noqa: E402

__all__ += [
    # supervised warm-up and hybrid methods
    "sft",
]
