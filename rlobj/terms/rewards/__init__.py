r"""Rewards: terms that write ``rewards`` or ``token_rewards`` (and per-rollout scores in ``extras``).

All run in the batch stage, on whole groups, before the advantage term of a recipe
(``term >> grpo``; the chain refuses the other order). A term that writes only a score to
``extras`` for later terms (VPPO's visual dependency) files here too: like a reward, it is
computed once per rollout batch from the rollout.

| module | holds |
|---|---|
| :mod:`~rlobj.terms.rewards.shaping` | DAPO's overlong penalty, length penalty, reward clipping |
| :mod:`~rlobj.terms.rewards.outcome` | Co-rewarding, AEPO, conciseness (CRF), GCPO sequence rewards |
| :mod:`~rlobj.terms.rewards.likelihood` | SAR and RLPR: rewards read off the policy's own likelihoods |
| :mod:`~rlobj.terms.rewards.process` | PPR and VSRM step rewards (``token_rewards``) |
| :mod:`~rlobj.terms.rewards.noisy_verifier` | backward correction of a noisy verifier, its online false-negative rate |
| :mod:`~rlobj.terms.rewards.turns` | multi-turn: turn rewards onto the tokens that end each turn |
| :mod:`~rlobj.terms.rewards.perception` | VPPO's token visual dependency score |
"""

from rlobj.terms.rewards.likelihood import (
    answer_probability,
    rlpr_reward,
    self_aligned_reward,
    self_aligned_score,
)
from rlobj.terms.rewards.noisy_verifier import (
    STANDARDIZING_TERMS,
    backward_correction,
    check_noisy_chain,
    fn_rate_from_appeals,
)
from rlobj.terms.rewards.outcome import (
    aepo_reward,
    co_reward,
    conciseness_reward,
    exploration_accuracy,
    first_hit_rank,
    gcpo_reward,
    majority_answer,
)
from rlobj.terms.rewards.perception import (
    visual_dependency,
    visual_dependency_score,
)
from rlobj.terms.rewards.process import (
    ppr_renorm,
    vsrm_step_reward,
)
from rlobj.terms.rewards.shaping import (
    clip_rewards,
    length_penalty,
    overlong_penalty,
)
from rlobj.terms.rewards.turns import (
    turn_end_rewards,
)

__all__ = [
    # shaping
    "clip_rewards",
    "length_penalty",
    "overlong_penalty",
    # outcome
    "aepo_reward",
    "co_reward",
    "conciseness_reward",
    "exploration_accuracy",
    "first_hit_rank",
    "gcpo_reward",
    "majority_answer",
    # likelihood
    "answer_probability",
    "rlpr_reward",
    "self_aligned_reward",
    "self_aligned_score",
    # process
    "ppr_renorm",
    "vsrm_step_reward",
    # noisy_verifier
    "backward_correction",
    "check_noisy_chain",
    "fn_rate_from_appeals",
    "STANDARDIZING_TERMS",
    # turns
    "turn_end_rewards",
    # perception
    "visual_dependency",
    "visual_dependency_score",
]
