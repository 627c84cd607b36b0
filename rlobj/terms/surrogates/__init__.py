r"""Surrogates: terms that write the ``"policy"`` loss part from the advantages.

Each writes the per-token policy loss without reading an earlier one: exactly one surrogate
per objective (replace it with ``chain.replace(clip_ratio, other)``).

| module | holds |
|---|---|
| :mod:`~rlobj.terms.surrogates.policy_gradient` | REINFORCE, PPO clip, dual / delta clip, GSPO, GMPO, CISPO, SAPO |
| :mod:`~rlobj.terms.surrogates.covariance` | Clip-Cov and KL-Cov |
| :mod:`~rlobj.terms.surrogates.off_policy` | Guide's hint-conditioned clip, RL-PLUS multiple importance sampling |
| :mod:`~rlobj.terms.surrogates.pacs` | PACS: the policy loss as supervised cross-entropy |
"""

from rlobj.terms.surrogates.covariance import (
    COV_SCOPES,
    clip_cov,
    kl_cov,
    token_covariance,
)
from rlobj.terms.surrogates.off_policy import (
    hint_clip_ratio,
    mis_exploration_pg,
)
from rlobj.terms.surrogates.pacs import (
    pacs_loss,
)
from rlobj.terms.surrogates.policy_gradient import (
    clip_ratio,
    clipped_weight_pg,
    delta_clip,
    geometric_clip,
    reinforce,
    sequence_clip,
    soft_gate,
)

__all__ = [
    # policy_gradient
    "clip_ratio",
    "clipped_weight_pg",
    "delta_clip",
    "geometric_clip",
    "reinforce",
    "sequence_clip",
    "soft_gate",
    # covariance
    "clip_cov",
    "COV_SCOPES",
    "kl_cov",
    "token_covariance",
    # off_policy
    "hint_clip_ratio",
    "mis_exploration_pg",
    # pacs
    "pacs_loss",
]
