"""SIREN: selective entropy regularization ("Rethinking Entropy Regularization in Large
Reasoning Models", arXiv 2509.25133).

:class:`siren` regularises the top-p (nucleus) entropy of the peak-entropy tokens
(:func:`peak_entropy_mask`) toward a self-anchored target; the nucleus entropy is the
vocabulary query in :mod:`rlobj.terms.regularizers.siren_entropy`.
"""

import math
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.algebra.contract import Fraction, NonNegative, OpenFraction
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import check_range
from rlobj.terms._views import current_view
from rlobj.terms.regularizers.siren_entropy import TopPEntropy

__all__ = ["peak_entropy_mask", "siren"]


def peak_entropy_mask(values: Tensor, mask: Tensor, quantile: float = 0.8) -> Tensor:
    r"""SIREN's per-sequence peak mask (spec §3.2): $H_{i,t} > q_i$ with $q_i$ the
    ``quantile`` of row $i$'s valid values (linear interpolation, as ``numpy``/``torch``
    ``nanquantile``); rows without valid tokens select nothing. For distinct values this keeps
    $\lceil (1-q)(L_i - 1)\rceil$ tokens of an $L_i$-token row."""
    scores = torch.where(mask, values.detach().float(), torch.full_like(values, math.nan, dtype=torch.float32))
    if scores.shape[-1] == 0:
        return mask.clone()
    cut = torch.nanquantile(scores, quantile, dim=-1, keepdim=True)
    return mask & (scores > cut)


class siren(Term, reads=("vocab", "mask"), writes=("part:siren",)):
    r"""SIREN: a self-anchored regulariser on the top-p entropy of the peak-entropy tokens.

    $$ \bar H(\theta) = \frac{1}{S}\sum_i \frac{1}{|M_i|}\sum_{t\in M_i} H^p_{i,t}, \qquad
       \mathcal R = \big(\bar H(\theta) - H_\text{anc}\big)^2, \qquad
       \text{loss} \mathrel{+}= \lambda\,\mathcal R, $$

    with $H^p_{i,t}$ the nucleus entropy renormalised inside the top-$p$ set (strictly below
    $p$, inside the ``top_k`` largest logits, see :class:`~rlobj.terms.regularizers.siren_entropy.TopPEntropy`), $M_i$ the tokens of response $i$ with
    $H^p > $ the row's ``quantile`` (:func:`peak_entropy_mask`, no gradient through it), $S$
    the responses of the micro-batch (a row with no peak token contributes 0). The anchor
    $H_\text{anc}$ is $\bar H$ of the **first rollout batch** under the initial policy, as in the
    reference (``ray_trainer.py`` at ``global_steps == 1``, over the whole batch): in the trainer
    the ``SirenAnchor`` provider computes it once, over all rows and ranks, and gives it as
    ``extras["siren_anchor"]`` (0-dim); the term stores it as term state at its first call and
    returns it unchanged afterwards (never mutated). Called directly without that extra, the
    anchor is the first call's $\bar H$ (detached; then $\mathcal R = 0$ at the first call).
    ``anchor=`` fixes it instead. $d\mathcal R/d\bar H = 2(\bar H - H_\text{anc})$ pulls the
    entropy back to the anchor from both sides.

    $\lambda\mathcal R$ is a function of a batch mean, not a per-token loss: the term writes a
    ``"scalar"`` loss part, which every aggregation adds as is, weighted (with a global
    :class:`~rlobj.algebra.state.Normalizer`) by the micro-batch's share of the sequences
    (times the data-parallel world size).

    Micro-batches (``scope="batch"``, default): the trainer's mini-batch statistics
    (:meth:`minibatch_stats`) give $\bar H$ of the whole optimizer mini-batch (detached, all
    micro-batches and ranks, $S$ its non-empty responses) and the peak masks. A micro-batch
    $k$ then contributes, by linearisation at $\bar H$,

    $$ \tfrac{|k|}{S}\,f(\bar H) + f'(\bar H)\,\frac{1}{S}\sum_{i\in k}\big(h_i(\theta) - \mathrm{sg}[h_i]\big),
       \qquad f(H) = \lambda (H - H_\text{anc})^2, $$

    ($h_i$ the row's peak mean), whose sum over micro-batches has the value and the gradient
    of $\lambda\mathcal R(\bar H(\theta))$ on the whole mini-batch exactly. Called directly
    without the statistics, $\bar H$ is the call's. ``scope="micro_batch"`` is the reference's gradient
    accumulation: $\lambda(\bar H_k - H_\text{anc})^2$ of each micro-batch's own mean,
    averaged over micro-batches; the gradient then depends on the micro-batch size (the
    square of a mean is not the mean of squares).

    Args:
        p: top-p mass of the nucleus (``entropy_topp`` 0.8).
        quantile: lower quantile of the per-sequence mask (``mask_ratio`` 0.8: top 20%).
        coef: $\lambda$ (``entropy_coeff`` 0.005).
        anchor: a fixed $H_\text{anc}$, or None: ``extras["siren_anchor"]`` (the first rollout
            batch, from the trainer), else the first call's $\bar H$.
        scope: ``"batch"`` (default, exact under micro-batching) or ``"micro_batch"``
            (the reference's per-micro-batch regulariser).
        top_k: the nucleus lives inside the ``top_k`` largest logits (``entropy_topk`` 10000);
            None: the whole vocabulary.

    References:
        "Rethinking Entropy Regularization in Large Reasoning Models", arXiv 2509.25133 (SIREN);
        reference code ``dp_actor.py`` (``experiment_type == "siren"``), base Dr. GRPO with
        the mask acting only on the regulariser.
    """

    minibatch_stats_additive: ClassVar[bool] = True
    p: OpenFraction = 0.8
    quantile: Fraction = 0.8
    coef: NonNegative = 0.005
    anchor: float | None = None
    scope: str = "batch"
    top_k: int | None = 10000

    def __post_init__(self):
        if self.top_k is not None:
            check_range("siren", "top_k", self.top_k, low=1)
        if self.scope not in ("batch", "micro_batch"):
            raise RlobjInputError(f"siren.scope: expected 'batch' or 'micro_batch', got {self.scope!r}")

    def has_minibatch_stats(self) -> bool:
        return self.scope == "batch"

    def slots_read(self) -> frozenset[str]:
        return frozenset(self.reads) | (frozenset({"extras:siren_anchor"}) if self.anchor is None else frozenset())

    def row_means(self, view, mask: Tensor, peak: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """$h_i$, each row's mean top-p entropy over its peak tokens (0 without any), and the
        peaks, from a vocab view (the trainer's ``SirenAnchor`` calls it on the old policy)."""
        (entropy,) = view.evaluate(TopPEntropy(self.p, self.top_k), mask=mask)
        if peak is None:
            peak = peak_entropy_mask(entropy, mask, self.quantile)
        counts = peak.sum(-1).clamp(min=1).to(entropy.dtype)
        return torch.where(peak, entropy, torch.zeros((), dtype=entropy.dtype)).sum(-1) / counts, peak

    def _row_means(self, state: State, peak: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.row_means(current_view(state, "siren"), state.mask, peak)

    def mean_entropy(self, state: State) -> tuple[Tensor, Tensor]:
        r"""$(\bar H(\theta), M)$ of this (micro-)batch."""
        per_row, peak = self._row_means(state)
        rows = state.mask.any(-1).sum().clamp(min=1).to(per_row.dtype)
        return per_row.sum() / rows, peak

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        r"""``sum`` ($\sum_i h_i$ over the mini-batch's rows, 0-dim), ``rows`` (non-empty rows,
        0-dim) and ``peak`` (``[batch, seq]`` bool, per row): additive over rows, so under data
        parallelism each rank computes them on its rows and the sums are added across ranks;
        $\bar H$ = ``sum / rows``."""
        if not self.has_minibatch_stats():
            return {}
        per_row, peak = self._row_means(state)
        rows = state.mask.any(-1).sum().to(per_row.dtype)
        return {"sum": per_row.sum().detach(), "rows": rows, "peak": peak}

    def __call__(self, state: State) -> State:
        total = state.own_stats("sum") if self.has_minibatch_stats() else None
        if total is None:
            mean, peak = self.mean_entropy(state)
            local = None
        else:
            per_row, peak = self._row_means(state, state.own_stats("peak"))
            mean = total.to(per_row.dtype) / state.own_stats("rows").to(per_row.dtype).clamp(min=1)
            local = per_row.sum() / state.mask.any(-1).sum().clamp(min=1).to(per_row.dtype)
        stored = state.own_state(None)
        anchor = self.anchor if self.anchor is not None else stored
        if anchor is None:
            given = state.extras.get("siren_anchor")
            anchor = float(given) if given is not None else float(mean.detach())
            state = state.set_own_state(anchor)
        regulariser = (mean - anchor) ** 2
        value = self.coef * regulariser
        if local is not None:  # linearised at the mini-batch mean: exact under micro-batching
            value = value + 2 * self.coef * (mean - anchor) * (local - local.detach())
        part = LossPart(value, state.mask, "scalar")
        return state.add_part("siren", part).add_metrics(**{
            "siren/entropy": mean.detach(), "siren/anchor": anchor,
            "siren/regularizer": regulariser.detach(),
            "siren/peak_frac": masked_mean(peak.float(), state.mask),
        })
