r"""Importance-sampling corrections for the engine/trainer mismatch: token weights and masks on
the policy part.

The inference engine that sampled the batch ($\pi_\text{rollout}$, ``extras["logp_rollout"]``)
and the trainer's recomputed $\pi_\text{old}$ differ; these terms multiply or mask the
``"policy"`` part by the weight $w = \pi_\text{old}/\pi_\text{rollout}$ (truncated, masked, or a
geometric-mean sequence rejection), so they come after the surrogate.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import Positive
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import broadcast_to_tokens, masked_mean, masked_sum, sequence_lengths
from rlobj.terms._common import check_range

__all__ = ["truncated_is", "masked_is", "geometric_is_mask"]


# --------------------------------------------------------------------------- IS corrections
def _check_level(term: str, level: str) -> None:
    if level not in ("token", "sequence"):
        raise RlobjInputError(f"{term}.level: expected 'token' or 'sequence', got {level!r}")


def _check_bounds(term: str, low: float, high: float) -> None:
    check_range(term, "low", low, low=0.0)
    if not high >= low:
        raise RlobjInputError(f"{term}: expected low <= high, got low={low}, high={high}")


class _Correction(Term,
                  reads=("part:policy", "logp_old", "extras:logp_rollout", "mask"),
                  writes=("part:policy",)):

    def _log_weights(self, state: State, by: str, level: str) -> Tensor:
        """$\\log \\pi_\\text{old}/\\pi_\\text{rollout}$ per token, or summed per sequence."""
        if level not in ("token", "sequence"):
            raise RlobjInputError(f"{by}.level: expected 'token' or 'sequence', got {level!r}")
        rollout = state.require("extras:logp_rollout", by)
        logp_old = state.require("logp_old", by)
        if not isinstance(rollout, Tensor):
            raise RlobjInputError(f"extras['logp_rollout']: expected a tensor, got {type(rollout).__name__}")
        check_shape("extras['logp_rollout']", rollout, tuple(state.mask.shape), "batch seq")
        log_w = torch.where(state.mask, logp_old - rollout, torch.zeros((), dtype=logp_old.dtype))
        if level == "sequence":
            log_w = broadcast_to_tokens(masked_sum(log_w, state.mask, dim=-1), state.mask)
        return log_w.detach()


class truncated_is(_Correction):
    r"""Truncated importance sampling (TIS) for the engine/trainer mismatch.

    $\ell_{i,t} \leftarrow \min(w, C)\,\ell_{i,t}$ with $w = \pi_\text{old}(y_{i,t})/\pi_\text{rollout}(y_{i,t})$
    (``level="token"``) or $w = \prod_t \pi_\text{old}/\pi_\text{rollout}$ (``"sequence"``).
    Yao et al., "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training"
    (Fengyao blog, 2025; verl ``rollout_is``), cap $C=2$.
    """

    cap: Positive = 2.0
    level: str = "token"

    def __post_init__(self):
        _check_level("truncated_is", self.level)

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        weight = torch.clamp(self._log_weights(state, "truncated_is", self.level).exp(), max=self.cap)
        part = policy.replace(values=weight * policy.values)
        return state.add_part("policy", part).add_metrics(**{
            "is/weight_mean": masked_mean(weight, state.mask),
            "is/truncated_frac": masked_mean((weight >= self.cap).float(), state.mask),
        })


class masked_is(_Correction):
    r"""Masked importance sampling (MIS): drop tokens or sequences whose weight leaves $[l, h]$.

    $\ell_{i,t} \leftarrow \mathbb 1[l \le w \le h]\,\ell_{i,t}$, with $w$ per token or per
    sequence as in :class:`truncated_is`. Same source (verl ``rollout_is`` with ``mask``
    mode); defaults $l=0.5$, $h=2$. Masked tokens keep their place in the normaliser.
    """

    low: float = 0.5
    high: float = 2.0
    level: str = "token"

    def __post_init__(self):
        _check_bounds("masked_is", self.low, self.high)
        _check_level("masked_is", self.level)

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        weight = self._log_weights(state, "masked_is", self.level).exp()
        keep = (weight >= self.low) & (weight <= self.high)
        part = policy.replace(mask=policy.mask & keep)
        return state.add_part("policy", part).add_metrics(**{
            "is/masked_frac": masked_mean((~keep).float(), state.mask),
        })


class geometric_is_mask(_Correction):
    r"""Geometric-mean sequence rejection: drop sequences with $\bar w_i \notin [l, h]$.

    $\bar w_i = \exp\big(\frac{1}{|y_i|}\sum_t \log\frac{\pi_\text{old}(y_{i,t})}{\pi_\text{rollout}(y_{i,t})}\big)$;
    length-normalised, so long sequences are not rejected just for being long (verl's
    geometric rejection sampling of rollout/trainer mismatch). Bounds are
    deployment-specific; the defaults $[0.5, 2]$ only drop gross mismatches.
    """

    low: float = 0.5
    high: float = 2.0

    def __post_init__(self):
        _check_bounds("geometric_is_mask", self.low, self.high)

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        log_w = self._log_weights(state, "geometric_is_mask", "token")
        mean = masked_mean(log_w, state.mask, dim=-1).exp()
        keep = ((mean >= self.low) & (mean <= self.high))[:, None]
        part = policy.replace(mask=policy.mask & keep)
        lengths = sequence_lengths(state.mask)
        return state.add_part("policy", part).add_metrics(**{
            "is/rejected_seq_frac": (~keep[:, 0] & (lengths > 0)).float().mean(),
        })
