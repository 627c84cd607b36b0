"""rlobj: a functional, composable objective algebra for RL with verifiable rewards.

>>> from rlobj import grpo, k3_kl
>>> print(grpo >> k3_kl(0.04))
group_zscore(eps=1e-06, unbiased=True, singleton='error') >> clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=None, log_ratio_clamp=20.0) >> seq_mean_token_mean() >> kl_penalty(beta=0.04, estimator='k3', against='ref', placement='loss', straight_through=False, allow_reward_and_loss=False, clamp=True, bias_correction=False, scale_key=None)
"""

# the algebra: state, terms, >>, aggregation, objective
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

# errors
from rlobj.ops.errors import (
    RlobjBuildError,
    RlobjInputError,
)

# the lazy full-vocabulary view
from rlobj.ops.vocab import VocabView

# paper presets
from rlobj.presets import (
    cispo,
    dapo,
    dr_grpo,
    gmpo,
    grpo,
    gspo,
    one_shot_rlvr,
    reinforce_pp,
    rloo,
    sapo,
)

# faithful recipes: each paper's whole objective with its reference settings (rlobj.presets.recipes)
from rlobj.presets.recipes import (
    clip_cov_recipe,
    dapo_recipe,
    dph_rl_recipe,
    forking_tokens_recipe,
    kl_cov_recipe,
    lp_reg_recipe,
    one_shot_rlvr_recipe,
    pacs_recipe,
    papo_recipe,
    riskpo_recipe,
    siren_recipe,
    ulorl_recipe,
    vppo_recipe,
    w_reinforce_recipe,
)
from rlobj.presets.seed_recipes import (
    aepo_recipe,
    canon_recipe,
    co_reward_recipe,
    ghpo_recipe,
    guide_recipe,
    laser_recipe,
    noisy_rlvr_recipe,
    rl_plus_recipe,
    rlpr_recipe,
    sar_recipe,
    wirelessmath_recipe,
)
from rlobj.presets.seed_recipes_2 import ppr_recipe, vsrm_recipe

# batch functions (rollout layer): act on the rollout batch, not on the loss
from rlobj.rollout.filters import (
    compensation_step,
    dars_cumulative_advantage,
    dars_extra_rollouts,
    dynamic_sampling,
    informative_groups,
    prof_filter,
    rorecomp_priority,
    self_curation,
    std_filter,
)

# terms, filed by the slot they write (rlobj.terms.<family>; grouped by slot in __all__ below)
# advantages (write advantages)
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

# auxiliary losses
from rlobj.terms.auxiliary import (
    self_reward_mse,
)

# divergences (loss parts comparing the policy with another distribution)
from rlobj.terms.divergences import (
    abs_kl,
    dph_divergence,
    f_divergence,
    forward_kl,
    js_divergence,
    k1_kl,
    k2_kl,
    k3_kl,
    kl_penalty,
    perception_kl,
    reverse_kl,
)

# masks (token weights and masks on the policy part; group masks)
from rlobj.terms.masks import (
    drop_zero_variance_groups,
    geometric_is_mask,
    masked_is,
    mastered_positive_mask,
    off_policy_sequence_mask,
    pivotal_token_mask,
    top_entropy_mask,
    truncated_is,
    truncated_mask,
)

# regularizers (entropy and other loss parts on the policy itself)
from rlobj.terms.regularizers import (
    adaptive_entropy,
    double_entropy,
    entropy_bonus,
    lp_reg,
    sampled_entropy_bonus,
    siren,
)

# rewards (write rewards / token_rewards; batch stage, before the advantage)
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
    visual_dependency_score,
    vsrm_step_reward,
)

# supervised losses
from rlobj.terms.supervised import (
    sft,
)

# surrogates (write the policy loss part)
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
)

__all__ = [
    # the lazy full-vocabulary view
    "VocabView",
    # the algebra: state, terms, >>, aggregation, objective
    "Chain",
    "chain",
    "constant_normalizer",
    "identity",
    "length_weighted",
    "LossPart",
    "Normalizer",
    "Objective",
    "Output",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "State",
    "Term",
    "token_mean",
    # errors
    "RlobjBuildError",
    "RlobjInputError",
    # rewards (write rewards / token_rewards; batch stage, before the advantage)
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
    "visual_dependency_score",
    "vsrm_step_reward",
    # advantages (write advantages)
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
    # masks (token weights and masks on the policy part; group masks)
    "drop_zero_variance_groups",
    "geometric_is_mask",
    "masked_is",
    "mastered_positive_mask",
    "off_policy_sequence_mask",
    "pivotal_token_mask",
    "top_entropy_mask",
    "truncated_is",
    "truncated_mask",
    # surrogates (write the policy loss part)
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
    # divergences (loss parts comparing the policy with another distribution)
    "abs_kl",
    "dph_divergence",
    "f_divergence",
    "forward_kl",
    "js_divergence",
    "k1_kl",
    "k2_kl",
    "k3_kl",
    "kl_penalty",
    "perception_kl",
    "reverse_kl",
    # regularizers (entropy and other loss parts on the policy itself)
    "adaptive_entropy",
    "double_entropy",
    "entropy_bonus",
    "lp_reg",
    "sampled_entropy_bonus",
    "siren",
    # supervised losses
    "sft",
    # auxiliary losses
    "self_reward_mse",
    # paper presets
    "cispo",
    "dapo",
    "dr_grpo",
    "gmpo",
    "grpo",
    "gspo",
    "one_shot_rlvr",
    "reinforce_pp",
    "rloo",
    "sapo",
    # faithful recipes
    "clip_cov_recipe",
    "dapo_recipe",
    "dph_rl_recipe",
    "forking_tokens_recipe",
    "kl_cov_recipe",
    "lp_reg_recipe",
    "one_shot_rlvr_recipe",
    "pacs_recipe",
    "papo_recipe",
    "riskpo_recipe",
    "siren_recipe",
    "ulorl_recipe",
    "vppo_recipe",
    "w_reinforce_recipe",
    "aepo_recipe",
    "canon_recipe",
    "co_reward_recipe",
    "ghpo_recipe",
    "guide_recipe",
    "laser_recipe",
    "noisy_rlvr_recipe",
    "rl_plus_recipe",
    "rlpr_recipe",
    "sar_recipe",
    "wirelessmath_recipe",
    "ppr_recipe",
    "vsrm_recipe",
    # batch functions (rollout layer)
    "compensation_step",
    "dars_cumulative_advantage",
    "dars_extra_rollouts",
    "dynamic_sampling",
    "informative_groups",
    "prof_filter",
    "rorecomp_priority",
    "self_curation",
    "std_filter",
]
