r"""Divergences: loss parts that compare the policy with another distribution.

A reference or initial policy (KL penalties, full-vocabulary and f-divergences, DPH-RL) or the
policy itself on a perturbed context (PAPO's perception KL); each writes its own loss part.

| module | holds |
|---|---|
| :mod:`~rlobj.terms.divergences.sampled_kl` | sampled-token KL estimators k1, k2, k3, abs, in the loss or the reward |
| :mod:`~rlobj.terms.divergences.full_vocab` | forward / reverse KL, JS, f-divergences over the whole vocabulary |
| :mod:`~rlobj.terms.divergences.dph` | DPH-RL's generator divergences on samples of the initial policy |
| :mod:`~rlobj.terms.divergences.perception` | PAPO's perception KL, the symmetric KL of two views |
"""

from rlobj.terms.divergences.dph import (
    dph_divergence,
)
from rlobj.terms.divergences.full_vocab import (
    GENERATORS,
    f_divergence,
    f_generator,
    forward_kl,
    js_divergence,
    reverse_kl,
)
from rlobj.terms.divergences.perception import (
    perception_kl,
    symmetric_kl,
)
from rlobj.terms.divergences.sampled_kl import (
    abs_kl,
    k1_kl,
    k2_kl,
    k3_kl,
    kl_estimate,
    kl_penalty,
)

__all__ = [
    # sampled_kl
    "abs_kl",
    "k1_kl",
    "k2_kl",
    "k3_kl",
    "kl_estimate",
    "kl_penalty",
    # full_vocab
    "f_divergence",
    "f_generator",
    "forward_kl",
    "GENERATORS",
    "js_divergence",
    "reverse_kl",
    # dph
    "dph_divergence",
    # perception
    "perception_kl",
    "symmetric_kl",
]
