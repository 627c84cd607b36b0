"""Private helper of the perception terms: the perturbed-context log-probabilities
``extras["logp_perturbed"]``, checked against the batch. Shared by
:mod:`rlobj.terms.divergences.perception` (PAPO's perception KL),
:mod:`rlobj.terms.regularizers.perception` (PAPO's double entropy) and
:mod:`rlobj.terms.rewards.perception` (VPPO's visual dependency score).
"""

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError, check_shape


def _perturbed_logp(state: State, by: str, keep_grad: bool = False) -> Tensor:
    """``extras["logp_perturbed"]`` checked against the batch, zero at padding (detached unless asked)."""
    value = state.extras.get("logp_perturbed")
    if value is None:
        raise RlobjInputError(
            f"{by} reads extras['logp_perturbed'], but the state has none. Compute the perturbed "
            "pass with rlobj.rollout.perception.perception_forward(...) and pass "
            "extras={'logp_perturbed': view.logp}."
        )
    if not isinstance(value, Tensor) or not value.is_floating_point():
        raise RlobjInputError(f"extras['logp_perturbed']: expected a float tensor, got {type(value).__name__}")
    check_shape("extras['logp_perturbed']", value, tuple(state.mask.shape), "batch seq")
    valid = torch.where(state.mask, value.detach(), torch.zeros((), dtype=value.dtype))
    if not bool(torch.isfinite(valid).all()):
        raise RlobjInputError("extras['logp_perturbed']: expected finite values at valid tokens, got NaN/inf")
    if bool((valid > 1e-6).any()):
        raise RlobjInputError(
            f"extras['logp_perturbed']: log-probabilities must be <= 0 at valid tokens, got max {float(valid.max()):.4g}")
    value = value if keep_grad else value.detach()
    return torch.where(state.mask, value, torch.zeros((), dtype=value.dtype))
