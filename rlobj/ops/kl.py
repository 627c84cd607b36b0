r"""Schulman's k3 estimator of a KL divergence from sampled log-ratios (one definition for the library).

For $x \sim p$ and $d = \log q(x) - \log p(x)$, $k_3(d) = e^{d} - 1 - d \ge 0$ is an unbiased,
low-variance estimate of $\mathrm{KL}(p \,\|\, q)$ (J. Schulman, "Approximating KL divergence", 2020).
"""

import torch
from torch import Tensor

__all__ = ["k3_estimate"]


def k3_estimate(log_ratio: Tensor) -> Tensor:
    r"""$e^{d} - 1 - d$ elementwise, with $d$ = ``log_ratio`` $= \log q(x) - \log p(x)$, $x \sim p$.

    Written ``expm1(d) - d``: the same value as ``exp(d) - d - 1`` but never negative and not 0
    for small $d \ne 0$ in float32 (where ``exp(d) - 1`` cancels catastrophically).

    Example:
        >>> k3_estimate(torch.tensor([0.0, 1e-4])).tolist()[0], bool(k3_estimate(torch.tensor([1e-4])) > 0)
        (0.0, True)
    """
    return torch.expm1(log_ratio) - log_ratio
