r"""Regularizers: loss parts (or a rewrite of the policy part) that shape the policy itself.

Entropy bonuses and their relatives; Lp-Reg, which rewrites the ``"policy"`` part on the
low-probability tokens it protects, files here by what it is (a regularizer), an exception the
layout test names.

| module | holds |
|---|---|
| :mod:`~rlobj.terms.regularizers.entropy` | entropy bonus, adaptive entropy coefficient, sampled-token entropy |
| :mod:`~rlobj.terms.regularizers.low_probability` | Lp-Reg |
| :mod:`~rlobj.terms.regularizers.lp_reg_proxy` | Lp-Reg's proxy log-probability (a vocabulary query) |
| :mod:`~rlobj.terms.regularizers.selective_entropy` | SIREN |
| :mod:`~rlobj.terms.regularizers.siren_entropy` | SIREN's top-p entropy (a vocabulary query) |
| :mod:`~rlobj.terms.regularizers.perception` | PAPO's double entropy |

The package re-exports the ``__all__`` of each module, so ``rlobj.terms.regularizers.<name>`` works
for every public name of the family.
"""

from rlobj.terms.regularizers import (
    entropy,
    low_probability,
    lp_reg_proxy,
    perception,
    selective_entropy,
    siren_entropy,
)
from rlobj.terms.regularizers.entropy import *  # noqa: F403
from rlobj.terms.regularizers.low_probability import *  # noqa: F403
from rlobj.terms.regularizers.lp_reg_proxy import *  # noqa: F403
from rlobj.terms.regularizers.perception import *  # noqa: F403
from rlobj.terms.regularizers.selective_entropy import *  # noqa: F403
from rlobj.terms.regularizers.siren_entropy import *  # noqa: F403

__all__ = [
    *entropy.__all__,
    *low_probability.__all__,
    *lp_reg_proxy.__all__,
    *selective_entropy.__all__,
    *siren_entropy.__all__,
    *perception.__all__,
]
