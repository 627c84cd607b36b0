r"""Masks: token weights and masks on the policy loss, and group masks.

A mask term either reads and rewrites the ``"policy"`` part an earlier surrogate wrote
(narrowing its mask or multiplying it by a weight), so it comes after the surrogate, or writes
``mask`` in the batch stage to drop whole groups.

| module | holds |
|---|---|
| :mod:`~rlobj.terms.masks.token_selection` | truncated completions, top-entropy (forking) tokens, off-policy sequences, mastered positives, VPPO pivotal tokens |
| :mod:`~rlobj.terms.masks.importance_weights` | truncated / masked IS and geometric rejection for the engine/trainer mismatch |
| :mod:`~rlobj.terms.masks.groups` | zero-variance groups (DAPO dynamic sampling in the objective) |

The package re-exports the ``__all__`` of each module, so ``rlobj.terms.masks.<name>`` works
for every public name of the family.
"""

from rlobj.terms.masks import groups, importance_weights, token_selection
from rlobj.terms.masks.groups import *  # noqa: F403
from rlobj.terms.masks.importance_weights import *  # noqa: F403
from rlobj.terms.masks.token_selection import *  # noqa: F403

__all__ = [
    *token_selection.__all__,
    *importance_weights.__all__,
    *groups.__all__,
]
