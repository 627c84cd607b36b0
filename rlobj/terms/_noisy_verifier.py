"""Private helpers of the noisy-verifier corrections (Cai et al., arXiv 2510.00915), shared
by :mod:`rlobj.terms.rewards.noisy_verifier` (backward correction, the online false-negative
rate) and :mod:`rlobj.terms.advantages.noisy_verifier` (forward correction): the binary-reward
check, the false-negative rate read from the state, the rate checks.
"""

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms._common import check_range, require_binary

_RHO_KEY = "noise_rho1"


def _binary_rewards(state: State, by: str) -> Tensor:
    return require_binary(state.require("rewards", by), f"{by} corrects a binary verifier, expected 0 or 1",
                          ". Put reward shaping after it.")


def _rho1(state: State, fixed: float | None, by: str) -> Tensor | float:
    if fixed is not None:
        return fixed
    estimate = state.require(f"extras:{_RHO_KEY}", by)
    estimate = torch.as_tensor(estimate, dtype=state.logp.dtype)
    if estimate.numel() != 1 or not bool((estimate >= 0).all() & (estimate < 1).all()):
        raise RlobjInputError(f"extras[{_RHO_KEY!r}]: {by} expected one number in [0, 1), got {estimate.tolist()}")
    return estimate.reshape(())


def _check_rates(term: str, rho0: float, rho1: float | None) -> None:
    check_range(term, "rho0", rho0, low=0.0, high=1.0)
    if rho1 is not None:
        check_range(term, "rho1", rho1, low=0.0, high=1.0)
        if rho0 + rho1 >= 1.0:
            raise RlobjInputError(
                f"{term}: expected rho0 + rho1 < 1 (a verifier better than chance), got "
                f"rho0={rho0} + rho1={rho1} = {rho0 + rho1}"
            )
