"""Layer 2 (above ops and algebra): the terms, filed by the slot each one writes.

| family | a term there writes |
|---|---|
| :mod:`rlobj.terms.rewards` | ``rewards`` or ``token_rewards`` (or a per-rollout score in ``extras``) |
| :mod:`rlobj.terms.advantages` | ``advantages`` |
| :mod:`rlobj.terms.masks` | ``mask``, or a weight / mask on the ``policy`` part it reads |
| :mod:`rlobj.terms.surrogates` | the ``policy`` part, from the advantages |
| :mod:`rlobj.terms.divergences` | a loss part comparing the policy with another distribution |
| :mod:`rlobj.terms.regularizers` | a loss part on the policy itself (entropy, Lp-Reg, SIREN) |
| :mod:`rlobj.terms.supervised` | the ``sft`` part |
| :mod:`rlobj.terms.auxiliary` | a part for a side quantity (LaSeR's self-reward) |

Aggregations (which write ``aggregation``) are in :mod:`rlobj.algebra.aggregation`. A paper's
term lives in the family of what it writes (its docstring names the paper); a paper with terms
in several families has one module per family, named alike (``perception``, ``noisy_verifier``,
``turns``). ``tests/terms/test_layout.py`` checks the rule for every registered term.
"""

# rewards: write ``rewards`` / ``token_rewards`` (batch stage, before the advantage)
# advantages: write ``advantages``
from rlobj.terms.advantages import (
    batch_whiten,
    brpo_advantage,
    canon_advantage,
    critique_token_advantage,
    dependency_advantage_shaping,
    forward_correction,
    gpg_scale,
    group_baseline_whiten,
    group_mean_baseline,
    group_mean_batch_std,
    group_zscore,
    leave_one_out,
    length_weighted_baseline,
    multi_reward_advantage,
    mvar_advantage,
    nsr,
    passk_advantage,
    psr,
    self_reward_advantage,
    token_hidden_reward,
    tree_value_advantage,
    turn_returns,
    vogue_bonus,
    w_reinforce,
)

# auxiliary losses: a part of their own (LaSeR's ``self_reward``)
from rlobj.terms.auxiliary import (
    self_reward_mse,
)

# divergences: loss parts comparing the policy with another distribution
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
    perception_kl,
    reverse_kl,
    symmetric_kl,
)

# masks: token weights and masks on the policy part, group masks (``mask``)
from rlobj.terms.masks import (
    drop_zero_variance_groups,
    geometric_is_mask,
    masked_is,
    mastered_positive_mask,
    off_policy_sequence_mask,
    pivotal_token_mask,
    top_entropy_mask,
    top_fraction_mask,
    truncated_is,
    truncated_mask,
    zero_variance_groups,
)

# regularizers: entropy and other loss parts on the policy itself
from rlobj.terms.regularizers import (
    adaptive_entropy,
    double_entropy,
    entropy_bonus,
    lp_reg,
    lp_reg_proxy_topk,
    lp_reg_selection,
    peak_entropy_mask,
    sampled_entropy_bonus,
    siren,
)
from rlobj.terms.rewards import (
    aepo_reward,
    backward_correction,
    clip_rewards,
    co_reward,
    conciseness_reward,
    fn_rate_from_appeals,
    gcpo_reward,
    length_penalty,
    overlong_penalty,
    ppr_renorm,
    rlpr_reward,
    self_aligned_reward,
    turn_end_rewards,
    visual_dependency,
    visual_dependency_score,
    vsrm_step_reward,
)

# supervised losses: the ``sft`` part
from rlobj.terms.supervised import (
    sft,
)

# surrogates: write the ``policy`` loss part
from rlobj.terms.surrogates import (
    clip_cov,
    clip_ratio,
    clipped_weight_pg,
    delta_clip,
    geometric_clip,
    hint_clip_ratio,
    kl_cov,
    mis_exploration_pg,
    pacs_loss,
    reinforce,
    sequence_clip,
    soft_gate,
    token_covariance,
)

__all__ = [
    # rewards: write ``rewards`` / ``token_rewards`` (batch stage, before the advantage)
    "aepo_reward",
    "backward_correction",
    "clip_rewards",
    "co_reward",
    "conciseness_reward",
    "fn_rate_from_appeals",
    "gcpo_reward",
    "length_penalty",
    "overlong_penalty",
    "ppr_renorm",
    "rlpr_reward",
    "self_aligned_reward",
    "turn_end_rewards",
    "visual_dependency",
    "visual_dependency_score",
    "vsrm_step_reward",
    # advantages: write ``advantages``
    "batch_whiten",
    "brpo_advantage",
    "canon_advantage",
    "critique_token_advantage",
    "dependency_advantage_shaping",
    "forward_correction",
    "gpg_scale",
    "group_baseline_whiten",
    "group_mean_baseline",
    "group_mean_batch_std",
    "group_zscore",
    "leave_one_out",
    "length_weighted_baseline",
    "multi_reward_advantage",
    "mvar_advantage",
    "nsr",
    "passk_advantage",
    "psr",
    "self_reward_advantage",
    "token_hidden_reward",
    "tree_value_advantage",
    "turn_returns",
    "vogue_bonus",
    "w_reinforce",
    # masks: token weights and masks on the policy part, group masks (``mask``)
    "drop_zero_variance_groups",
    "geometric_is_mask",
    "masked_is",
    "mastered_positive_mask",
    "off_policy_sequence_mask",
    "pivotal_token_mask",
    "top_entropy_mask",
    "top_fraction_mask",
    "truncated_is",
    "truncated_mask",
    "zero_variance_groups",
    # surrogates: write the ``policy`` loss part
    "clip_cov",
    "clip_ratio",
    "clipped_weight_pg",
    "delta_clip",
    "geometric_clip",
    "hint_clip_ratio",
    "kl_cov",
    "mis_exploration_pg",
    "pacs_loss",
    "reinforce",
    "sequence_clip",
    "soft_gate",
    "token_covariance",
    # divergences: loss parts comparing the policy with another distribution
    "abs_kl",
    "dph_divergence",
    "f_divergence",
    "f_generator",
    "forward_kl",
    "GENERATORS",
    "js_divergence",
    "k1_kl",
    "k2_kl",
    "k3_kl",
    "kl_estimate",
    "kl_penalty",
    "perception_kl",
    "reverse_kl",
    "symmetric_kl",
    # regularizers: entropy and other loss parts on the policy itself
    "adaptive_entropy",
    "double_entropy",
    "entropy_bonus",
    "lp_reg",
    "lp_reg_proxy_topk",
    "lp_reg_selection",
    "peak_entropy_mask",
    "sampled_entropy_bonus",
    "siren",
    # supervised losses: the ``sft`` part
    "sft",
    # auxiliary losses: a part of their own (LaSeR's ``self_reward``)
    "self_reward_mse",
]
