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

``rlobj.terms`` re-exports every family's ``__all__``; ``rlobj`` itself re-exports the terms by
name, grouped by the same slots.
"""

from rlobj.terms import (
    advantages,
    auxiliary,
    divergences,
    masks,
    regularizers,
    rewards,
    supervised,
    surrogates,
)
from rlobj.terms.advantages import *  # noqa: F403
from rlobj.terms.auxiliary import *  # noqa: F403
from rlobj.terms.divergences import *  # noqa: F403
from rlobj.terms.masks import *  # noqa: F403
from rlobj.terms.regularizers import *  # noqa: F403
from rlobj.terms.rewards import *  # noqa: F403
from rlobj.terms.supervised import *  # noqa: F403
from rlobj.terms.surrogates import *  # noqa: F403

__all__ = [
    *rewards.__all__,
    *advantages.__all__,
    *masks.__all__,
    *surrogates.__all__,
    *divergences.__all__,
    *regularizers.__all__,
    *supervised.__all__,
    *auxiliary.__all__,
]
