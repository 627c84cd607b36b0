"""Layer 1: one module per family of terms (advantages, surrogates, divergences, ...)."""

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
from rlobj.terms.divergences import abs_kl, k1_kl, k2_kl, k3_kl, kl_estimate, kl_penalty
from rlobj.terms.masks import (
    off_policy_sequence_mask,
    top_entropy_mask,
    top_fraction_mask,
    truncated_mask,
)
from rlobj.terms.regularizers import adaptive_entropy, entropy_bonus
from rlobj.terms.rewards import (
    clip_rewards,
    drop_zero_variance_groups,
    length_penalty,
    overlong_penalty,
    zero_variance_groups,
)
from rlobj.terms.surrogates import (
    clip_ratio,
    clipped_weight_pg,
    delta_clip,
    geometric_clip,
    geometric_is_mask,
    masked_is,
    reinforce,
    sequence_clip,
    soft_gate,
    truncated_is,
)

__all__ = [
    "abs_kl", "adaptive_entropy", "batch_whiten", "clip_ratio", "clip_rewards", "clipped_weight_pg",
    "delta_clip", "drop_zero_variance_groups", "entropy_bonus", "geometric_clip", "geometric_is_mask",
    "gpg_scale", "group_baseline_whiten", "group_mean_baseline", "group_mean_batch_std", "group_zscore",
    "k1_kl", "k2_kl", "k3_kl", "kl_estimate", "kl_penalty", "leave_one_out", "length_penalty",
    "length_weighted_baseline", "masked_is", "multi_reward_advantage", "off_policy_sequence_mask",
    "overlong_penalty", "passk_advantage", "reinforce", "sequence_clip", "soft_gate", "top_entropy_mask",
    "top_fraction_mask", "truncated_is", "truncated_mask", "zero_variance_groups",
]

# seed methods I
from rlobj.terms.auxiliary import pacs_loss, self_reward_advantage, self_reward_mse  # noqa: E402
from rlobj.terms.corrections import backward_correction, fn_rate_from_appeals, forward_correction  # noqa: E402
from rlobj.terms.reinforcement import nsr, psr, w_reinforce  # noqa: E402
from rlobj.terms.risk import mvar_advantage  # noqa: E402

__all__ += ["backward_correction", "fn_rate_from_appeals", "forward_correction", "mvar_advantage", "nsr", "pacs_loss", "psr", "self_reward_advantage", "self_reward_mse", "w_reinforce"]

# seed methods I (continued)
from rlobj.terms.advantage_estimators import brpo_advantage, canon_advantage  # noqa: E402
from rlobj.terms.reward_models import (  # noqa: E402
    aepo_reward,
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
from rlobj.terms.divergences import (  # noqa: E402
    GENERATORS,
    dph_divergence,
    f_divergence,
    f_generator,
    forward_kl,
    js_divergence,
    reverse_kl,
)
from rlobj.terms.regularizers import (  # noqa: E402
    lp_reg,
    lp_reg_proxy_topk,
    lp_reg_selection,
    peak_entropy_mask,
    sampled_entropy_bonus,
    siren,
)

__all__ += ["GENERATORS", "dph_divergence", "f_divergence", "f_generator", "forward_kl", "js_divergence",
            "lp_reg", "lp_reg_proxy_topk", "lp_reg_selection", "peak_entropy_mask", "reverse_kl",
            "sampled_entropy_bonus", "siren"]

# seed methods II: UloRL mastered-token mask, Clip-Cov / KL-Cov
from rlobj.terms.masks import mastered_positive_mask  # noqa: E402
from rlobj.terms.surrogates import clip_cov, kl_cov, token_covariance  # noqa: E402

__all__ += ["clip_cov", "kl_cov", "mastered_positive_mask", "token_covariance"]

# seed methods II: perception terms (PAPO, VPPO visual dependency, VOGUE)
from rlobj.terms.perception import (  # noqa: E402
    double_entropy,
    perception_kl,
    symmetric_kl,
    visual_dependency,
    visual_dependency_score,
    vogue_bonus,
)

__all__ += ["double_entropy", "perception_kl", "symmetric_kl", "visual_dependency", "visual_dependency_score",
            "vogue_bonus"]

# seed methods I (remaining)
from rlobj.terms.sampling_corrections import hint_clip_ratio, mis_exploration_pg  # noqa: E402
from rlobj.terms.token_weights import (  # noqa: E402
    critique_token_advantage,
    dependency_advantage_shaping,
    pivotal_token_mask,
    token_hidden_reward,
)

__all__ += ["critique_token_advantage", "dependency_advantage_shaping", "hint_clip_ratio", "mis_exploration_pg",
            "pivotal_token_mask", "token_hidden_reward"]

# supervised warm-up and hybrid methods
from rlobj.terms.supervised import sft  # noqa: E402

__all__ += ["sft"]
