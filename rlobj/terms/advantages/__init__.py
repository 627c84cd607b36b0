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

The package re-exports the ``__all__`` of each module, so ``rlobj.terms.advantages.<name>`` works
for every public name of the family.
"""

from rlobj.terms.advantages import (
    baselines,
    comparisons,
    noisy_verifier,
    perception,
    risk,
    sample_polarity,
    self_reward,
    token_credit,
    tree,
    turns,
)
from rlobj.terms.advantages.baselines import *  # noqa: F403
from rlobj.terms.advantages.comparisons import *  # noqa: F403
from rlobj.terms.advantages.noisy_verifier import *  # noqa: F403
from rlobj.terms.advantages.perception import *  # noqa: F403
from rlobj.terms.advantages.risk import *  # noqa: F403
from rlobj.terms.advantages.sample_polarity import *  # noqa: F403
from rlobj.terms.advantages.self_reward import *  # noqa: F403
from rlobj.terms.advantages.token_credit import *  # noqa: F403
from rlobj.terms.advantages.tree import *  # noqa: F403
from rlobj.terms.advantages.turns import *  # noqa: F403

__all__ = [
    *baselines.__all__,
    *comparisons.__all__,
    *sample_polarity.__all__,
    *risk.__all__,
    *token_credit.__all__,
    *tree.__all__,
    *turns.__all__,
    *self_reward.__all__,
    *noisy_verifier.__all__,
    *perception.__all__,
]
