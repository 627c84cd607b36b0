r"""Divergences: loss parts that compare the policy with another distribution.

A reference or initial policy (KL penalties, full-vocabulary and f-divergences, DPH-RL) or the
policy itself on a perturbed context (PAPO's perception KL); each writes its own loss part.

| module | holds |
|---|---|
| :mod:`~rlobj.terms.divergences.sampled_kl` | sampled-token KL estimators k1, k2, k3, abs, in the loss or the reward |
| :mod:`~rlobj.terms.divergences.full_vocab` | forward / reverse KL, JS, f-divergences over the whole vocabulary |
| :mod:`~rlobj.terms.divergences.dph` | DPH-RL's generator divergences on samples of the initial policy |
| :mod:`~rlobj.terms.divergences.perception` | PAPO's perception KL, the symmetric KL of two views |

The package re-exports the ``__all__`` of each module, so ``rlobj.terms.divergences.<name>`` works
for every public name of the family.
"""

from rlobj.terms.divergences import dph, full_vocab, perception, sampled_kl
from rlobj.terms.divergences.dph import *  # noqa: F403
from rlobj.terms.divergences.full_vocab import *  # noqa: F403
from rlobj.terms.divergences.perception import *  # noqa: F403
from rlobj.terms.divergences.sampled_kl import *  # noqa: F403

__all__ = [
    *sampled_kl.__all__,
    *full_vocab.__all__,
    *dph.__all__,
    *perception.__all__,
]
