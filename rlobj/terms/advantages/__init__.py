r"""Advantages: terms that write ``advantages``.

Batch-stage terms (whole groups, before micro-batching) that turn rewards into per-token
advantages, or rescale advantages an earlier term wrote (VOGUE's bonus runs in the loss stage).

| module | holds |
|---|---|
| :mod:`~rlobj.terms.advantages.baselines` | group z-score (GRPO), group mean (Dr. GRPO), leave-one-out (RLOO), whitening (REINFORCE++), OPO, GPG, pass@k, multi-reward |
| :mod:`~rlobj.terms.advantages.comparisons` | CANON conditional halves, BRPO pairwise verdicts |
| :mod:`~rlobj.terms.advantages.sample_polarity` | PSR, NSR, W-REINFORCE |
| :mod:`~rlobj.terms.advantages.risk` | RiskPO's mixed value-at-risk |
| :mod:`~rlobj.terms.advantages.token_credit` | per-token credit: CAPO critiques, THR token influence, VPPO dependency shaping |
| :mod:`~rlobj.terms.advantages.tree` | DeepSearch tree-node values |
| :mod:`~rlobj.terms.advantages.turns` | multi-turn discounted turn returns |
| :mod:`~rlobj.terms.advantages.self_reward` | LaSeR's self-reward mixed into the advantage |
| :mod:`~rlobj.terms.advantages.noisy_verifier` | forward correction of a noisy verifier |
| :mod:`~rlobj.terms.advantages.perception` | VOGUE's visual-uncertainty bonus |
"""

from rlobj.terms.advantages.baselines import (
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
from rlobj.terms.advantages.comparisons import (
    brpo_advantage,
    canon_advantage,
    conditional_halves,
    pick_references,
)
from rlobj.terms.advantages.noisy_verifier import (
    forward_correction,
)
from rlobj.terms.advantages.perception import (
    vogue_bonus,
)
from rlobj.terms.advantages.risk import (
    QUANTILE_LEVELS,
    mvar_advantage,
    mvar_scores,
    update_quantiles,
)
from rlobj.terms.advantages.sample_polarity import (
    nsr,
    psr,
    w_reinforce,
)
from rlobj.terms.advantages.self_reward import (
    self_reward_advantage,
)
from rlobj.terms.advantages.token_credit import (
    critique_token_advantage,
    dependency_advantage_shaping,
    token_hidden_reward,
    wrong_step_tokens,
)
from rlobj.terms.advantages.tree import (
    leaf_step_tokens,
    tree_value_advantage,
)
from rlobj.terms.advantages.turns import (
    turn_returns,
)

__all__ = [
    # baselines
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
    # comparisons
    "brpo_advantage",
    "canon_advantage",
    "conditional_halves",
    "pick_references",
    # sample_polarity
    "nsr",
    "psr",
    "w_reinforce",
    # risk
    "mvar_advantage",
    "mvar_scores",
    "QUANTILE_LEVELS",
    "update_quantiles",
    # token_credit
    "critique_token_advantage",
    "dependency_advantage_shaping",
    "token_hidden_reward",
    "wrong_step_tokens",
    # tree
    "leaf_step_tokens",
    "tree_value_advantage",
    # turns
    "turn_returns",
    # self_reward
    "self_reward_advantage",
    # noisy_verifier
    "forward_correction",
    # perception
    "vogue_bonus",
]
