r"""What a query sees of one chunk: logit blocks, row statistics and gradient collectors.

The engine (:mod:`rlobj.ops.vocab.engine`) cuts the ``[tokens, vocab]`` computation into chunks
of token rows and, when one row is too large, blocks of vocabulary columns. For every chunk it
builds, per *source* (the view itself and every other view a query compares it with):

* a :class:`LogitBlock`: the logits $z$ of the rows and columns of the block, their
  log-normaliser, and lazily the probabilities $\pi = e^{z - \mathrm{lse}}$;
* a :class:`RowStats`: the per-row log-normaliser and max logit once the whole row was seen;
* in backward, one :class:`LogitGradient` per source that needs a gradient, to which each
  query adds its $\partial\,\text{out} / \partial z$ in a few structured forms.

:class:`LogitSource` computes the logits of a block (from hidden states and the output
projection, or from given logits) and pushes the collected gradient back into them.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LogitBlock", "LogitGradient", "LogitSource", "RowStats", "Workspace", "as_column"]


def as_column(values: Tensor) -> Tensor:
    """``values[:, None]``: a per-row ``[rows]`` tensor as a ``[rows, 1]`` column to broadcast."""
    return values.unsqueeze(1)


class Workspace:
    """Scratch buffers reused by every chunk of one pass (fresh large allocations cost page faults
    on the CPU and allocator traffic everywhere). ``get(name, rows, cols)`` is a contiguous
    ``[rows, cols]`` view of the buffer ``name``; one name must not hold two live things at once."""

    def __init__(self, rows: int, cols: int, dtype: torch.dtype, device: torch.device):
        self.size = rows * cols
        self.dtype, self.device = dtype, device
        self._buffers: dict = {}

    def get(self, name: str, rows: int, cols: int, dtype: torch.dtype | None = None) -> Tensor:
        dtype = dtype or self.dtype
        key = (name, dtype)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(self.size, dtype=dtype, device=self.device)
        return self._buffers[key][: rows * cols].view(rows, cols)


class LogitSource:
    """How to compute the logits ``z[rows, columns]`` of one distribution and push a gradient back.

    ``slots`` index the flat tensor list handed to the autograd function: ``(hidden, weight[,
    bias])`` for a projection source (``kind="hidden"``, hidden already row-selected to ``[n, H]``)
    or ``(logits,)`` (``kind="logits"``) with an optional ``row_index`` (the logits stay
    ``[batch * seq, vocab]`` and rows are picked per chunk).
    """

    def __init__(self, kind, slots, temperature, softcap, compute_dtype, row_index=None):
        self.kind = kind
        self.slots = slots
        self.temperature = temperature
        self.softcap = softcap
        self.compute_dtype = compute_dtype
        self.row_index = row_index

    def fill(self, tensors, row_start, row_stop, col_start, col_stop, out) -> Tensor | None:
        """Write the logits of rows ``row_start:row_stop`` and vocabulary ids
        ``col_start:col_stop`` into ``out`` (a workspace buffer of the compute dtype); return
        ``tanh(.)`` of the soft-cap (backward needs it) or None."""
        if self.kind == "hidden":
            hidden = tensors[self.slots[0]][row_start:row_stop]
            weight = tensors[self.slots[1]][col_start:col_stop]
            if weight.dtype == out.dtype:
                torch.mm(hidden, weight.t(), out=out)
            else:  # low-precision product (fp32 accumulation inside), then widened
                out.copy_(torch.mm(hidden, weight.t()))
            if len(self.slots) == 3:
                out.add_(tensors[self.slots[2]][col_start:col_stop])
        else:
            logits = tensors[self.slots[0]]
            if self.row_index is None:  # a copy: user memory is never modified
                out.copy_(logits[row_start:row_stop, col_start:col_stop])
            else:
                out.copy_(logits[self.row_index[row_start:row_stop], col_start:col_stop])
        squash = None
        if self.softcap is not None:
            squash = torch.tanh(out.mul_(1.0 / self.softcap))
            torch.mul(squash, self.softcap / self.temperature, out=out)
        elif self.temperature != 1.0:
            out.mul_(1.0 / self.temperature)
        return squash

    def backprop(self, tensors, grads, rows, cols, grad_logits, squash, grad_hidden_chunk):
        """Push ``grad_logits = dL/dz`` of one block (``rows`` and ``cols`` are ``(start, stop)``)
        into the gradient buffers in ``grads``.

        Projection gradients are written (not added) by the first row chunk and the hidden-state
        chunk by the first vocabulary block, so their buffers need no zero fill."""
        (row_start, row_stop), (col_start, col_stop) = rows, cols
        dz = grad_logits
        if squash is not None:
            dz.mul_((1.0 - squash * squash).mul_(1.0 / self.temperature))
        elif self.temperature != 1.0:
            dz.mul_(1.0 / self.temperature)
        if self.kind != "hidden":
            slot = self.slots[0]
            if grads[slot] is None:
                return
            value = dz.to(grads[slot].dtype)
            if self.row_index is None:
                grads[slot][row_start:row_stop, col_start:col_stop] = value
            else:
                grads[slot][self.row_index[row_start:row_stop], col_start:col_stop] = value
            return
        hidden_slot, weight_slot = self.slots[0], self.slots[1]
        if grads[hidden_slot] is not None:
            weight_block = tensors[weight_slot][col_start:col_stop]
            if weight_block.dtype == dz.dtype:
                if col_start == 0:
                    torch.mm(dz, weight_block, out=grad_hidden_chunk)
                else:
                    grad_hidden_chunk.addmm_(dz, weight_block)
            else:
                product = torch.mm(dz.to(weight_block.dtype), weight_block)
                if col_start == 0:
                    grad_hidden_chunk.copy_(product)
                else:
                    grad_hidden_chunk.add_(product)
        if grads[weight_slot] is not None:
            hidden = tensors[hidden_slot][row_start:row_stop].to(dz.dtype)
            if row_start == 0:
                torch.mm(dz.t(), hidden, out=grads[weight_slot][col_start:col_stop])
            else:
                grads[weight_slot][col_start:col_stop].addmm_(dz.t(), hidden)
        if len(self.slots) == 3 and grads[self.slots[2]] is not None:
            if row_start == 0:
                torch.sum(dz, dim=0, out=grads[self.slots[2]][col_start:col_stop])
            else:
                grads[self.slots[2]][col_start:col_stop].add_(dz.sum(0))


class LogitBlock:
    """The logits of every source on one block of rows and vocabulary columns.

    Attributes:
        logits: ``{source: [rows, cols]}`` logits (in forward, shifted by the row max, so
            ``<= 0``; in backward the unshifted ones).
        lse: ``{source: [rows]}`` log-normaliser of the *whole* row in the same coordinates
            (None during the first pass over split rows, when it is not known yet).
        row_max: ``{source: [rows]}`` max logit of the row in the same coordinates (0 in
            forward; not set in backward).
        col_start, col_stop: the vocabulary ids this block covers.
    """

    def __init__(self, logits, squash, lse, col_start, col_stop, workspace):
        self.workspace = workspace
        self.logits = logits
        self.squash = squash
        self.lse = lse
        self.col_start, self.col_stop = col_start, col_stop
        self.row_max = None
        self._probs = {}

    def probs(self, source: int) -> Tensor:
        """Probabilities ``exp(z - lse)`` of ``source`` on this block (computed once, cached)."""
        if source not in self._probs:
            rows, cols = self.logits[source].shape
            out = self.workspace.get(f"p{source}", rows, cols)
            self._probs[source] = torch.sub(
                self.logits[source], as_column(self.lse[source]), out=out
            ).exp_()
        return self._probs[source]

    def log_probs(self, source: int) -> Tensor:
        """Log-probabilities ``z - lse`` of ``source`` on this block (a fresh tensor)."""
        return self.logits[source] - as_column(self.lse[source])

    def scratch(self) -> Tensor:
        """A ``[rows, cols]`` buffer for one transient product (reduce it before the next use)."""
        rows, cols = next(iter(self.logits.values())).shape
        return self.workspace.get("scratch", rows, cols)

    def set_probs(self, source: int, probs: Tensor) -> None:
        self._probs[source] = probs

    def locate(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``(inside, local)`` for vocabulary ``ids``: which lie in this block, and their column
        in it (clamped into the block where they do not)."""
        ids = ids.long()
        inside = (ids >= self.col_start) & (ids < self.col_stop)
        local = (ids - self.col_start).clamp_(0, self.col_stop - self.col_start - 1)
        return inside, local


@dataclass
class RowStats:
    """Per-row statistics of one token chunk, per source, once every column was seen. The forward
    pass works on logits shifted by ``shift`` (the row max), so ``lse`` is the shifted
    log-normaliser and ``row_max`` is 0; ``dtype`` is the compute dtype."""

    lse: dict
    row_max: dict
    shift: dict
    dtype: torch.dtype


class LogitGradient:
    r"""Collects the gradient of one source's logits on one block as
    $dz = \pi \odot (\alpha + \sum_k \beta_k z_k) + \sum_j \gamma_j \pi_j + \text{dense} +
    \text{scattered}$ with per-row coefficients $\alpha, \beta_k, \gamma_j$ (``[rows]``), then
    builds it with few passes over the block. Queries add to it in :meth:`VocabQuery.backward`.
    """

    def __init__(self, rows: int, dtype: torch.dtype, device: torch.device):
        self.prob_coef = torch.zeros(rows, dtype=dtype, device=device)
        self.prob_times_logits: list[tuple[Tensor, int]] = []
        self.other_probs: list[tuple[Tensor, int]] = []
        self.dense: list[Tensor] = []
        self.scattered: list[tuple[Tensor, Tensor]] = []
        self._has_prob_coef = False

    def add_probs(self, coef: Tensor) -> None:
        r"""Add $\text{coef} \cdot \pi$ (this source's probabilities times a per-row ``[rows]``)."""
        self.prob_coef.add_(coef)
        self._has_prob_coef = True

    def add_probs_times_logits(self, coef: Tensor, source: int) -> None:
        r"""Add $\text{coef} \cdot \pi \odot z_\text{source}$ (logits of ``source``, same block)."""
        self.prob_times_logits.append((coef, source))

    def add_probs_of(self, coef: Tensor, source: int) -> None:
        r"""Add $\text{coef} \cdot \pi_\text{source}$ (another source's probabilities)."""
        self.other_probs.append((coef, source))

    def add_dense(self, values: Tensor) -> None:
        """Add a whole ``[rows, cols]`` block."""
        self.dense.append(values)

    def add_at(self, ids: Tensor, values: Tensor) -> None:
        """Add ``values`` ``[rows, k]`` at vocabulary ``ids`` ``[rows, k]`` (those in the block)."""
        self.scattered.append((ids, values))

    def build(self, block: LogitBlock, source: int) -> Tensor:
        """The gradient ``[rows, cols]`` of ``source``'s logits on ``block`` (a workspace buffer)."""
        probs = block.probs(source)
        grad = block.workspace.get(f"dz{source}", *probs.shape)
        if self.prob_times_logits:
            coef, other = self.prob_times_logits[0]
            torch.addcmul(as_column(self.prob_coef), block.logits[other], as_column(coef), out=grad)
            for coef, other in self.prob_times_logits[1:]:
                grad.addcmul_(block.logits[other], as_column(coef))
            grad.mul_(probs)
        elif self._has_prob_coef:
            torch.mul(probs, as_column(self.prob_coef), out=grad)
        else:
            grad.zero_()
        for coef, other in self.other_probs:
            grad.addcmul_(block.probs(other), as_column(coef))
        for values in self.dense:
            grad.add_(values)
        for ids, values in self.scattered:
            inside, local = block.locate(ids)
            grad.scatter_add_(1, local, torch.where(inside, values, torch.zeros_like(values)))
        return grad
