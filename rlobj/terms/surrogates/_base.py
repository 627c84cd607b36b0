"""Shared pieces of the surrogates (the ``"policy"`` loss part): the base class, the clamped
log-ratio, the PPO clip and the ratio metrics. Used by :mod:`rlobj.terms.surrogates.policy_gradient`
and :mod:`rlobj.terms.surrogates.covariance`.
"""

import torch
from torch import Tensor

from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import check_nonempty_rows
from rlobj.ops.kl import k3_estimate
from rlobj.ops.reductions import masked_mean

__all__: list[str] = []


class _Surrogate(Term,
                 reads=("logp", "logp_old", "advantages", "mask"),
                 writes=("part:policy",),
                 may_read=("extras:dropped",)):
    pass


def _log_ratio(state: State, by: str, clamp: float) -> Tensor:
    logp_old = state.require("logp_old", by)
    return torch.clamp(state.logp - logp_old, -clamp, clamp)


def _check_rows(state: State, needed_by: str) -> None:
    """Sequence-level ratios need tokens in every row, except rows a term dropped on purpose."""
    dropped = state.extras.get("dropped")
    mask = state.mask if dropped is None else state.mask | dropped[:, None]
    check_nonempty_rows("mask", mask, needed_by)


def _ppo_loss(ratio: Tensor, advantages: Tensor, eps_low: float, eps_high: float,
              dual_clip: float | None) -> tuple[Tensor, Tensor]:
    """$\\max(-A\\rho, -A\\,\\mathrm{clip}(\\rho))$ and, for $A<0$, $\\min(\\cdot, -cA)$; plus the clipped flags."""
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if dual_clip is not None:
        capped = torch.minimum(loss, -advantages * dual_clip)
        was_clipped = was_clipped | ((advantages < 0) & (capped < loss))
        loss = torch.where(advantages < 0, capped, loss)
    return loss, was_clipped


def _policy(state: State, loss: Tensor, **metrics) -> State:
    return state.add_part("policy", LossPart(loss, state.mask)).add_metrics(**metrics)


def _ratio_metrics(state: State, log_ratio: Tensor, clipped: Tensor | None = None) -> dict:
    mask = state.mask
    metrics = {
        "ratio/mean": masked_mean(log_ratio.detach().exp(), mask),
        # k3 estimate of KL(pi_old || pi_theta) on the sampled tokens
        "kl/old_policy": masked_mean(k3_estimate(-log_ratio.detach()), mask),
    }
    if clipped is not None:
        metrics["clip_frac"] = masked_mean(clipped.float(), mask)
    return metrics
