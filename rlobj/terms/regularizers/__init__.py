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
"""

from rlobj.terms.regularizers.entropy import (
    adaptive_entropy,
    entropy_bonus,
    sampled_entropy_bonus,
)
from rlobj.terms.regularizers.low_probability import (
    lp_reg,
    lp_reg_proxy_topk,
    lp_reg_selection,
)
from rlobj.terms.regularizers.lp_reg_proxy import (
    ProxyLogProb,
    proxy_logp,
)
from rlobj.terms.regularizers.perception import (
    double_entropy,
)
from rlobj.terms.regularizers.selective_entropy import (
    peak_entropy_mask,
    siren,
)
from rlobj.terms.regularizers.siren_entropy import (
    TopPEntropy,
    top_p_entropy,
)

__all__ = [
    # entropy
    "adaptive_entropy",
    "entropy_bonus",
    "sampled_entropy_bonus",
    # low_probability
    "lp_reg",
    "lp_reg_proxy_topk",
    "lp_reg_selection",
    # lp_reg_proxy
    "proxy_logp",
    "ProxyLogProb",
    # selective_entropy
    "peak_entropy_mask",
    "siren",
    # siren_entropy
    "top_p_entropy",
    "TopPEntropy",
    # perception
    "double_entropy",
]
