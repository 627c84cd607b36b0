"""Private helpers of LaSeR's last-token self-reward, shared by the auxiliary loss
(:class:`~rlobj.terms.auxiliary.self_reward_mse`) and the advantage that mixes the score in
(:class:`~rlobj.terms.advantages.self_reward.self_reward_advantage`): the probe log-probability
``extras["self_reward_logp"]`` and which rows finished.
"""

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError, check_finite, check_shape
from rlobj.terms._common import check_range

_PROBE = "self_reward_logp"


def _probe(state: State, by: str) -> Tensor:
    probe = state.require(f"extras:{_PROBE}", by)
    if not isinstance(probe, Tensor):
        raise RlobjInputError(f"extras[{_PROBE!r}]: {by} expected a float tensor of shape (batch,), got {type(probe).__name__}")
    check_shape(f"extras[{_PROBE!r}]", probe, (state.batch_size,), "batch")
    finished = _finished(state)
    check_finite(f"extras[{_PROBE!r}]", probe, where=finished)
    if bool((torch.where(finished, probe.detach(), 0) > 1e-6).any()):
        raise RlobjInputError(f"extras[{_PROBE!r}]: log-probabilities must be <= 0, got max {float(probe.max()):.4g}")
    return torch.where(finished, probe, torch.zeros((), dtype=probe.dtype, device=probe.device))


def _finished(state: State) -> Tensor:
    truncated = state.extras.get("truncated")
    if truncated is None:
        return torch.ones(state.batch_size, dtype=torch.bool, device=state.mask.device)
    check_shape("extras['truncated']", truncated, (state.batch_size,), "batch")
    return ~truncated.bool()


def _check_common(term: str, beta_v: float, temperature: float) -> None:
    check_range(term, "beta_v", beta_v, low=0.0, low_open=True)
    check_range(term, "temperature", temperature, low=0.0, low_open=True)
