r"""Surrogates: terms that write the ``"policy"`` loss part from the advantages.

Each writes the per-token policy loss without reading an earlier one: exactly one surrogate
per objective (replace it with ``chain.replace(clip_ratio, other)``).

| module | holds |
|---|---|
| :mod:`~rlobj.terms.surrogates.policy_gradient` | REINFORCE, PPO clip, dual / delta clip, GSPO, GMPO, CISPO, SAPO |
| :mod:`~rlobj.terms.surrogates.covariance` | Clip-Cov and KL-Cov |
| :mod:`~rlobj.terms.surrogates.off_policy` | Guide's hint-conditioned clip, RL-PLUS multiple importance sampling |
| :mod:`~rlobj.terms.surrogates.pacs` | PACS: the policy loss as supervised cross-entropy |

The package re-exports the ``__all__`` of each module, so ``rlobj.terms.surrogates.<name>`` works
for every public name of the family.
"""

from rlobj.terms.surrogates import covariance, off_policy, pacs, policy_gradient
from rlobj.terms.surrogates.covariance import *  # noqa: F403
from rlobj.terms.surrogates.off_policy import *  # noqa: F403
from rlobj.terms.surrogates.pacs import *  # noqa: F403
from rlobj.terms.surrogates.policy_gradient import *  # noqa: F403

__all__ = [
    *policy_gradient.__all__,
    *covariance.__all__,
    *off_policy.__all__,
    *pacs.__all__,
]
