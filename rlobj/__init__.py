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

# advantage estimators
from rlobj.terms.advantage_estimators import (
    brpo_advantage,
    canon_advantage,
)

# advantages
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

# auxiliary
from rlobj.terms.auxiliary import (
    pacs_loss,
    self_reward_advantage,
    self_reward_mse,
)

# corrections
from rlobj.terms.corrections import (
    backward_correction,
    fn_rate_from_appeals,
    forward_correction,
)

# divergences
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
    reverse_kl,
)

# masks
from rlobj.terms.masks import (
    mastered_positive_mask,
    off_policy_sequence_mask,
    top_entropy_mask,
    truncated_mask,
)

# perception
from rlobj.terms.perception import (
    double_entropy,
    perception_kl,
    visual_dependency_score,
    vogue_bonus,
)

# regularizers
from rlobj.terms.regularizers import (
    adaptive_entropy,
    entropy_bonus,
    lp_reg,
    sampled_entropy_bonus,
    siren,
)

# reinforcement
from rlobj.terms.reinforcement import (
    nsr,
    psr,
    w_reinforce,
)

# reward models
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

# rewards
from rlobj.terms.rewards import (
    clip_rewards,
    drop_zero_variance_groups,
    length_penalty,
    overlong_penalty,
)

# risk
from rlobj.terms.risk import (
    mvar_advantage,
)

# sampling corrections
from rlobj.terms.sampling_corrections import (
    hint_clip_ratio,
    mis_exploration_pg,
)

# supervised
from rlobj.terms.supervised import (
    sft,
)

# surrogates
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
    truncated_is,
)

# token weights
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
    # advantage estimators
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
    "abs_kl",
    "dph_divergence",
    "f_divergence",
    "forward_kl",
    "js_divergence",
    "k1_kl",
    "k2_kl",
    "k3_kl",
    "kl_penalty",
    "reverse_kl",
    # masks
    "mastered_positive_mask",
    "off_policy_sequence_mask",
    "top_entropy_mask",
    "truncated_mask",
    # perception
    "double_entropy",
    "perception_kl",
    "visual_dependency_score",
    "vogue_bonus",
    # regularizers
    "adaptive_entropy",
    "entropy_bonus",
    "lp_reg",
    "sampled_entropy_bonus",
    "siren",
    # reinforcement
    "nsr",
    "psr",
    "w_reinforce",
    # reward models
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
    # risk
    "mvar_advantage",
    # sampling corrections
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
    "truncated_is",
    # token weights
    "critique_token_advantage",
    "dependency_advantage_shaping",
    "pivotal_token_mask",
    "token_hidden_reward",
    "tree_value_advantage",
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
    # turns (multi-turn rollouts)
    "turn_end_rewards",
    "turn_returns",
]
