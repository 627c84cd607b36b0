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

The package re-exports the ``__all__`` of each module, so ``rlobj.terms.rewards.<name>`` works
for every public name of the family.
"""

from rlobj.terms.rewards import (
    likelihood,
    noisy_verifier,
    outcome,
    perception,
    process,
    shaping,
    turns,
)
from rlobj.terms.rewards.likelihood import *  # noqa: F403
from rlobj.terms.rewards.noisy_verifier import *  # noqa: F403
from rlobj.terms.rewards.outcome import *  # noqa: F403
from rlobj.terms.rewards.perception import *  # noqa: F403
from rlobj.terms.rewards.process import *  # noqa: F403
from rlobj.terms.rewards.shaping import *  # noqa: F403
from rlobj.terms.rewards.turns import *  # noqa: F403

__all__ = [
    *shaping.__all__,
    *outcome.__all__,
    *likelihood.__all__,
    *process.__all__,
    *noisy_verifier.__all__,
    *turns.__all__,
    *perception.__all__,
]
