"""Layer 2 (above ops and algebra): one module per family of terms."""

from rlobj.terms.advantage_estimators import (
    brpo_advantage,
    canon_advantage,
)
from rlobj.terms.advantages import (
    batch_whiten,
    gpg_scale,
    group_baseline_whiten,
    group_mean_baseline,
    group_mean_batch_std,
    group_zscore,
    leave_one_out,
    length_weighted_baseline,
    multi_reward_advantage,
    passk_advantage,
)
from rlobj.terms.auxiliary import (
    pacs_loss,
    self_reward_advantage,
    self_reward_mse,
)
from rlobj.terms.corrections import (
    backward_correction,
    fn_rate_from_appeals,
    forward_correction,
)
from rlobj.terms.divergences import (
    GENERATORS,
    abs_kl,
    dph_divergence,
    f_divergence,
    f_generator,
    forward_kl,
    js_divergence,
    k1_kl,
    k2_kl,
    k3_kl,
    kl_estimate,
    kl_penalty,
    reverse_kl,
)
from rlobj.terms.masks import (
    mastered_positive_mask,
    off_policy_sequence_mask,
    top_entropy_mask,
    top_fraction_mask,
    truncated_mask,
)
from rlobj.terms.perception import (
    double_entropy,
    perception_kl,
    symmetric_kl,
    visual_dependency,
    visual_dependency_score,
    vogue_bonus,
)
from rlobj.terms.regularizers import (
    adaptive_entropy,
    entropy_bonus,
    lp_reg,
    lp_reg_proxy_topk,
    lp_reg_selection,
    peak_entropy_mask,
    sampled_entropy_bonus,
    siren,
)
from rlobj.terms.reinforcement import (
    nsr,
    psr,
    w_reinforce,
)
from rlobj.terms.reward_models import (
    aepo_reward,
    co_reward,
    conciseness_reward,
    gcpo_reward,
    ppr_renorm,
    rlpr_reward,
    self_aligned_reward,
    vsrm_step_reward,
)
from rlobj.terms.rewards import (
    clip_rewards,
    drop_zero_variance_groups,
    length_penalty,
    overlong_penalty,
    zero_variance_groups,
)
from rlobj.terms.risk import (
    mvar_advantage,
)
from rlobj.terms.sampling_corrections import (
    hint_clip_ratio,
    mis_exploration_pg,
)
from rlobj.terms.supervised import (
    sft,
)
from rlobj.terms.surrogates import (
    clip_cov,
    clip_ratio,
    clipped_weight_pg,
    delta_clip,
    geometric_clip,
    geometric_is_mask,
    kl_cov,
    masked_is,
    reinforce,
    sequence_clip,
    soft_gate,
    token_covariance,
    truncated_is,
)
from rlobj.terms.token_weights import (
    critique_token_advantage,
    dependency_advantage_shaping,
    pivotal_token_mask,
    token_hidden_reward,
)
from rlobj.terms.tree_advantages import (
    tree_value_advantage,
)
from rlobj.terms.turns import turn_end_rewards, turn_returns

__all__ = [
    # advantage_estimators
    "brpo_advantage",
    "canon_advantage",
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
    # auxiliary
    "pacs_loss",
    "self_reward_advantage",
    "self_reward_mse",
    # corrections
    "backward_correction",
    "fn_rate_from_appeals",
    "forward_correction",
    # divergences
    "GENERATORS",
    "abs_kl",
    "dph_divergence",
    "f_divergence",
    "f_generator",
    "forward_kl",
    "js_divergence",
    "k1_kl",
    "k2_kl",
    "k3_kl",
    "kl_estimate",
    "kl_penalty",
    "reverse_kl",
    # masks
    "mastered_positive_mask",
    "off_policy_sequence_mask",
    "top_entropy_mask",
    "top_fraction_mask",
    "truncated_mask",
    # perception
    "double_entropy",
    "perception_kl",
    "symmetric_kl",
    "visual_dependency",
    "visual_dependency_score",
    "vogue_bonus",
    # regularizers
    "adaptive_entropy",
    "entropy_bonus",
    "lp_reg",
    "lp_reg_proxy_topk",
    "lp_reg_selection",
    "peak_entropy_mask",
    "sampled_entropy_bonus",
    "siren",
    # reinforcement
    "nsr",
    "psr",
    "w_reinforce",
    # reward_models
    "aepo_reward",
    "co_reward",
    "conciseness_reward",
    "gcpo_reward",
    "ppr_renorm",
    "rlpr_reward",
    "self_aligned_reward",
    "vsrm_step_reward",
    # rewards
    "clip_rewards",
    "drop_zero_variance_groups",
    "length_penalty",
    "overlong_penalty",
    "zero_variance_groups",
    # risk
    "mvar_advantage",
    # sampling_corrections
    "hint_clip_ratio",
    "mis_exploration_pg",
    # supervised
    "sft",
    # surrogates
    "clip_cov",
    "clip_ratio",
    "clipped_weight_pg",
    "delta_clip",
    "geometric_clip",
    "geometric_is_mask",
    "kl_cov",
    "masked_is",
    "reinforce",
    "sequence_clip",
    "soft_gate",
    "token_covariance",
    "truncated_is",
    # token_weights
    "critique_token_advantage",
    "dependency_advantage_shaping",
    "pivotal_token_mask",
    "token_hidden_reward",
    # tree_advantages
    "tree_value_advantage",
    # turns (multi-turn rollouts)
    "turn_end_rewards",
    "turn_returns",
]
