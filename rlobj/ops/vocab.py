r"""A lazy view of full next-token distributions that never builds the ``[tokens, vocab]`` tensor.

Terms such as full-vocabulary entropy, KL / JS / f-divergences against a reference, Lp-Reg's
filtered proxy and SIREN's top-p entropy need the whole next-token distribution at every response
position. At a 151,936-token vocabulary and 32k tokens the float32 logits alone take ~19 GB, so a
:class:`VocabView` computes them chunk by chunk (over tokens, and over the vocabulary when one
token row is still too large), from the hidden states and the output projection

$$ z_t = \mathrm{softcap}(h_t W^\top + b) / \tau, \qquad
   \mathrm{softcap}(x) = c \tanh(x / c), \qquad \pi(v \mid s_t) = \mathrm{softmax}(z_t)_v , $$

or from given logits ($z_t = \text{logits}_t / \tau$). Everything is reduced to per-token
``"batch seq"`` tensors inside one custom :class:`torch.autograd.Function` that recomputes the logits
chunk in backward and writes the gradient analytically (``softmax - onehot`` and friends), so
neither the logits nor their gradient ever exist whole when the view is built from hidden states.

Several per-token quantities of the same views can be computed in **one** pass with
:meth:`VocabView.evaluate` (one output-projection product in forward, one recomputation in
backward); the single-quantity methods (:meth:`VocabView.logp`, :meth:`VocabView.entropy`, ...) are
shorthands for it.

Precision: products run in the input dtype (bf16 logits are rounded to bf16 by the matrix product,
as in a plain ``lm_head``), every reduction and every gradient block is float32 (float64 when the
inputs are float64), and the weight gradient is accumulated over chunks in float32.
"""

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.chunking import ChunkPlan, chunk_bounds, plan_chunks
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.typecheck import typechecked

__all__ = [
    "VocabView",
    "TopK",
    "LogProb",
    "Entropy",
    "TopPEntropy",
    "KL",
    "JS",
    "FDivergence",
    "ProxyLogProb",
    "TopKMask",
    "TopPMask",
]

_LOG2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """``(a * b).sum(-1)`` with torch's pairwise summation (more accurate than a matmul dot)."""
    return torch.mul(a, b).sum(dim=-1)


def _col(x: Tensor) -> Tensor:
    return x.unsqueeze(1)


def _check_probability(name: str, value: float, *, low_open: bool = True) -> float:
    value = float(value)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise RlobjInputError(f"{name}: expected a value in {interval}, got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# sources: one next-token distribution each, as the chunk engine sees it
# ---------------------------------------------------------------------------------------------


class _Workspace:
    """Scratch buffers reused by every chunk of one pass (fresh large allocations cost page faults
    on the CPU and allocator traffic everywhere). ``get(name, c, w)`` is a contiguous ``[c, w]``
    view of the buffer ``name``; one name must not be used for two live things at once."""

    def __init__(self, rows: int, cols: int, dtype, device):
        self.size = rows * cols
        self.dtype, self.device = dtype, device
        self._buffers: dict = {}

    def get(self, name: str, c: int, w: int, dtype=None) -> Tensor:
        dtype = dtype or self.dtype
        key = (name, dtype)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(self.size, dtype=dtype, device=self.device)
        return self._buffers[key][: c * w].view(c, w)


class _Source:
    """How to compute a logits block ``z[rows, v0:v1]`` (float32/64) and push a gradient back.

    ``slots`` index the flat tensor list handed to the autograd function: ``(hidden, weight[,
    bias])`` for a projection source (hidden already row-selected to ``[n, H]``) or ``(logits,)``
    with an optional ``row_index`` (logits stay ``[B*T, V]`` and rows are picked per chunk).
    """

    def __init__(self, kind, slots, temperature, softcap, compute_dtype, row_index=None):
        self.kind = kind
        self.slots = slots
        self.temperature = temperature
        self.softcap = softcap
        self.compute_dtype = compute_dtype
        self.row_index = row_index

    def block(self, tensors, r0, r1, v0, v1, out):
        """Write the logits of rows ``r0:r1``, vocabulary ``v0:v1`` into ``out`` (a workspace
        buffer of the compute dtype); return ``tanh(.)`` of the soft-cap (for backward) or None."""
        if self.kind == "hidden":
            hidden = tensors[self.slots[0]][r0:r1]
            weight = tensors[self.slots[1]][v0:v1]
            if weight.dtype == out.dtype:
                torch.mm(hidden, weight.t(), out=out)
            else:  # low-precision product (fp32 accumulation inside), then widened
                out.copy_(torch.mm(hidden, weight.t()))
            if len(self.slots) == 3:
                out.add_(tensors[self.slots[2]][v0:v1])
        else:
            logits = tensors[self.slots[0]]
            if self.row_index is None:
                out.copy_(logits[r0:r1, v0:v1])  # a copy: user memory is never modified
            else:
                out.copy_(logits[self.row_index[r0:r1], v0:v1])
        squash = None
        if self.softcap is not None:
            squash = torch.tanh(out.mul_(1.0 / self.softcap))
            torch.mul(squash, self.softcap / self.temperature, out=out)
        elif self.temperature != 1.0:
            out.mul_(1.0 / self.temperature)
        return squash

    def backprop(self, tensors, grads, r0, r1, v0, v1, dz, squash, dhidden_chunk):
        """Push ``dz = dL/dz`` of one block into the gradient buffers in ``grads``.

        Projection gradients are written (not added) by the first row chunk (``r0 == 0``) and the
        hidden-state chunk by the first vocabulary block (``v0 == 0``), so their buffers need no
        zero fill."""
        if squash is not None:
            dz.mul_((1.0 - squash * squash).mul_(1.0 / self.temperature))
        elif self.temperature != 1.0:
            dz.mul_(1.0 / self.temperature)
        if self.kind == "hidden":
            hidden_slot, weight_slot = self.slots[0], self.slots[1]
            weight = tensors[weight_slot]
            if grads[hidden_slot] is not None:
                w_block = weight[v0:v1]
                if w_block.dtype == dz.dtype:
                    if v0 == 0:
                        torch.mm(dz, w_block, out=dhidden_chunk)
                    else:
                        dhidden_chunk.addmm_(dz, w_block)
                else:
                    product = torch.mm(dz.to(w_block.dtype), w_block)
                    if v0 == 0:
                        dhidden_chunk.copy_(product)
                    else:
                        dhidden_chunk.add_(product)
            if grads[weight_slot] is not None:
                hidden = tensors[hidden_slot][r0:r1].to(dz.dtype)
                if r0 == 0:
                    torch.mm(dz.t(), hidden, out=grads[weight_slot][v0:v1])
                else:
                    grads[weight_slot][v0:v1].addmm_(dz.t(), hidden)
            if len(self.slots) == 3 and grads[self.slots[2]] is not None:
                if r0 == 0:
                    torch.sum(dz, dim=0, out=grads[self.slots[2]][v0:v1])
                else:
                    grads[self.slots[2]][v0:v1].add_(dz.sum(0))
        else:
            slot = self.slots[0]
            if grads[slot] is None:
                return
            target = grads[slot]
            value = dz.to(target.dtype)
            if self.row_index is None:
                target[r0:r1, v0:v1] = value
            else:
                target[self.row_index[r0:r1], v0:v1] = value


class _Block:
    """Logits of every source on one ``[rows, v0:v1]`` block, with lazily cached probabilities."""

    def __init__(self, z, squash, lse, v0, v1, rows, ws):
        self.ws = ws
        self.z = z  # dict source -> [c, w]
        self.squash = squash
        self.lse = lse  # dict source -> [c] (full-row log-normaliser)
        self.v0, self.v1 = v0, v1
        self.rows = rows
        self.max = None  # dict source -> [c] row max logit, set by the forward pass
        self._p = {}

    def p(self, s: int) -> Tensor:
        """Probabilities ``exp(z - lse)`` of source ``s`` on this block (cached)."""
        if s not in self._p:
            c, w = self.z[s].shape
            out = self.ws.get(f"p{s}", c, w)
            self._p[s] = torch.sub(self.z[s], _col(self.lse[s]), out=out).exp_()
        return self._p[s]

    def scratch(self) -> Tensor:
        """A ``[c, w]`` buffer for one transient product (reduced before the next use)."""
        c, w = next(iter(self.z.values())).shape
        return self.ws.get("scratch", c, w)

    def logp(self, s: int) -> Tensor:
        return self.z[s] - _col(self.lse[s])

    def set_p(self, s: int, p: Tensor) -> None:
        self._p[s] = p

    def in_block(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """``(inside, local)`` for vocabulary ids ``index``: which lie in this block, local ids."""
        index = index.long()
        inside = (index >= self.v0) & (index < self.v1)
        local = (index - self.v0).clamp_(0, self.v1 - self.v0 - 1)
        return inside, local


class _Grad:
    r"""Gradient of one source's logits on one block, collected as
    $dz = p \odot (\alpha + \sum_k \beta_k z_k) + \sum_j \gamma_j p_j + \text{dense} +
    \text{scatter}$ (per-row coefficients), then built with few passes over the block."""

    def __init__(self, rows: int, dtype, device):
        self.alpha = torch.zeros(rows, dtype=dtype, device=device)
        self.zterms: list[tuple[Tensor, int]] = []
        self.pterms: list[tuple[Tensor, int]] = []
        self.dense: list[Tensor] = []
        self.sparse: list[tuple[Tensor, Tensor]] = []
        self.touched_alpha = False

    def add_alpha(self, coef: Tensor) -> None:
        self.alpha.add_(coef)
        self.touched_alpha = True

    def build(self, blk: _Block, s: int) -> Tensor:
        p = blk.p(s)
        dz = blk.ws.get(f"dz{s}", *p.shape)
        if self.zterms:
            coef, k = self.zterms[0]
            torch.addcmul(_col(self.alpha), blk.z[k], _col(coef), out=dz)
            for coef, k in self.zterms[1:]:
                dz.addcmul_(blk.z[k], _col(coef))
            dz.mul_(p)
        elif self.touched_alpha:
            torch.mul(p, _col(self.alpha), out=dz)
        else:
            dz.zero_()
        for coef, j in self.pterms:
            dz.addcmul_(blk.p(j), _col(coef))
        for extra in self.dense:
            dz.add_(extra)
        for index, value in self.sparse:
            inside, local = blk.in_block(index)
            dz.scatter_add_(1, local, torch.where(inside, value, torch.zeros_like(value)))
        return dz


# ---------------------------------------------------------------------------------------------
# queries: what to compute per token (each documents its formula)
# ---------------------------------------------------------------------------------------------


class _Query(abc.ABC):
    """Protocol of a per-token full-vocabulary quantity (internal methods start with ``_``).

    ``data`` are ``"batch seq ..."`` tensors the engine flattens, row-selects and slices per chunk;
    ``_gathers`` lists ``(role, data_slot)`` pairs whose integer data are vocabulary ids at which
    the engine gathers the logits of the role's source (role 0 = the view, 1 = ``other``).
    """

    differentiable = True
    full_rows = False
    extra_buffers = 0
    out_dtype = None  # None: the compute dtype

    def _other(self):
        return None

    def _data(self) -> list[Tensor]:
        return []

    def _gathers(self) -> list[tuple[int, int]]:
        return []

    def _validate(self, view: "VocabView") -> None:  # noqa: B027 (optional hook)
        """Raise :class:`RlobjInputError` for bad arguments (default: nothing to check)."""

    def _accumulate(self, blk, src, data, gath, acc) -> None:  # noqa: B027 (optional hook)
        """Add this block's contribution to the row sums in ``acc`` (default: none needed)."""

    @abc.abstractmethod
    def _finalize(self, stats, src, data, gath, acc) -> tuple[Tensor, dict]:
        """Per-row result ``[c]`` and the per-row tensors backward needs."""

    def _backward(self, blk, src, data, gath, saved, g, grads) -> None:  # noqa: B027
        """Add ``g * d(out)/dz`` of this block to the collectors in ``grads`` (default: none)."""


def _add_acc(acc: dict, key: str, value: Tensor) -> None:
    acc[key] = acc[key] + value if key in acc else value


def _check_tokens(name: str, tokens: Tensor, view: "VocabView") -> None:
    if not isinstance(tokens, Tensor) or tokens.dtype not in (
        torch.int64,
        torch.int32,
        torch.int16,
        torch.uint8,
    ):
        got = tokens.dtype if isinstance(tokens, Tensor) else type(tokens).__name__
        raise RlobjInputError(f"{name}: expected an integer tensor of token ids, got {got}")
    if tuple(tokens.shape) != view.shape:
        raise RlobjInputError(
            f"{name}: expected shape (batch seq) = {view.shape}, got {tuple(tokens.shape)}"
        )


@dataclass(frozen=True, eq=False)
class LogProb(_Query):
    r"""Log-probability of the sampled token: $\log\pi(o_t \mid s_t) = z_{t,o_t} -
    \operatorname{logsumexp}_v z_{t,v}$. Gradient $\partial/\partial z_t = \mathrm{onehot}(o_t) -
    \pi(\cdot \mid s_t)$."""

    tokens: Tensor

    def _data(self):
        return [self.tokens]

    def _gathers(self):
        return [(0, 0)]

    def _validate(self, view):
        _check_tokens("tokens", self.tokens, view)

    def _finalize(self, stats, src, data, gath, acc):
        return gath[0][:, 0] - stats.lse[src[0]], {}

    def _backward(self, blk, src, data, gath, saved, g, grads):
        s = src[0]
        if s in grads:
            grads[s].add_alpha(-g)
            grads[s].sparse.append((data[0].long().unsqueeze(1), g.unsqueeze(1)))


@dataclass(frozen=True, eq=False)
class Entropy(_Query):
    r"""Full-vocabulary entropy $H_t = -\sum_v \pi_v \log \pi_v = \operatorname{logsumexp}(z_t) -
    \sum_v \pi_v z_{t,v}$. Gradient $\partial H/\partial z_v = -\pi_v(\log\pi_v + H)$."""

    def _accumulate(self, blk, src, data, gath, acc):
        s = src[0]
        _add_acc(acc, "pz", torch.mul(blk.p(s), blk.z[s], out=blk.scratch()).sum(dim=1))

    def _finalize(self, stats, src, data, gath, acc):
        entropy = stats.lse[src[0]] - acc["pz"]
        return entropy, {"entropy": entropy}

    def _backward(self, blk, src, data, gath, saved, g, grads):
        s = src[0]
        if s in grads:
            grads[s].add_alpha(-g * (saved["entropy"] - blk.lse[s]))
            grads[s].zterms.append((-g, s))


@dataclass(frozen=True, eq=False)
class TopPEntropy(_Query):
    r"""SIREN's top-p (nucleus) entropy, renormalised inside the nucleus (arXiv 2509.25133, §3.1
    of the spec).

    $$ N_t = \{v : \textstyle\sum_{u:\,\pi_u > \pi_v} \pi_u + \pi_v < p\}, \quad
       q_v = \pi_v / \textstyle\sum_{u \in N_t}\pi_u \ (v \in N_t), \quad
       H^p_t = -\textstyle\sum_{v\in N_t} q_v \log q_v . $$

    Boundary rule: sort the probabilities in decreasing order; the nucleus is the prefix whose
    cumulative probability (including the token itself) is **strictly below** ``p``: the token
    that crosses ``p`` is excluded, and if the top-1 probability alone is ``>= p`` the nucleus is
    empty and $H^p_t = 0$ (the reference code's rule). Tokens tied in probability enter or leave
    together (decided by the first of them in sorted order). Gradient
    $\partial H^p/\partial z_v = -q_v(\log q_v + H^p)$ on $N_t$, 0 elsewhere (membership is not
    differentiated). Sorting needs whole vocabulary rows, so this query never splits the
    vocabulary. Property: $0 \le H^p_t \le \log |N_t|$.

    ``max_tokens`` $k$ (SIREN's ``entropy_topk`` = 10000): the reference first truncates each
    row to its $k$ largest logits (probabilities still of the full softmax) and takes the
    nucleus inside them, so the nucleus never holds more than the top $k$ tokens (all $k$
    when their mass stays below ``p``). None: no truncation.
    """

    p: float = 0.8
    max_tokens: int | None = None
    full_rows = True
    extra_buffers = 4

    def _validate(self, view):
        _check_probability("p", self.p)
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool)
                                            or self.max_tokens < 1):
            raise RlobjInputError(f"max_tokens: expected a positive int or None, got {self.max_tokens!r}")

    def _accumulate(self, blk, src, data, gath, acc):
        s = src[0]
        z, lse = blk.z[s], blk.lse[s]
        sorted_z = torch.sort(z, dim=1, descending=True).values
        cumulative = (sorted_z - _col(lse)).exp_().cumsum_(dim=1)
        count = (cumulative < self.p).sum(dim=1)
        if self.max_tokens is not None:
            count = count.clamp(max=self.max_tokens)
        last = sorted_z.gather(1, (count - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        threshold = torch.where(count > 0, last, torch.full_like(last, math.inf))
        del sorted_z, cumulative
        inside = torch.where(z >= _col(threshold), blk.p(s), torch.zeros((), dtype=z.dtype))
        acc["threshold"] = threshold
        acc["mass"] = inside.sum(dim=1)
        acc["plogp"] = _rowdot(inside, blk.logp(s))

    def _finalize(self, stats, src, data, gath, acc):
        mass = acc["mass"]
        empty = mass <= 0
        safe_mass = torch.where(empty, torch.ones_like(mass), mass)
        log_mass = safe_mass.log()
        entropy = torch.where(empty, torch.zeros_like(mass), log_mass - acc["plogp"] / safe_mass)
        # backward sees unshifted logits: keep the shift so it can redo the exact same comparison
        saved = {
            "entropy": entropy,
            "threshold": acc["threshold"],
            "shift": stats.shift[src[0]],
            "log_mass": log_mass,
        }
        return entropy, saved

    def _backward(self, blk, src, data, gath, saved, g, grads):
        s = src[0]
        if s not in grads:
            return
        z = blk.z[s]
        # -q (log q + H) = -(p / m) (z - lse - log m + H) on the nucleus
        scale = -g / saved["log_mass"].exp()
        shift = saved["entropy"] - blk.lse[s] - saved["log_mass"]
        grad = torch.addcmul(_col(shift * scale), z, _col(scale)).mul_(blk.p(s))
        grad.masked_fill_((z - _col(saved["shift"])) < _col(saved["threshold"]), 0.0)
        grads[s].dense.append(grad)


@dataclass(frozen=True, eq=False)
class TopK:
    r"""A stored top-k of a reference distribution: ``logprobs`` and vocabulary ``indices``
    (``"batch seq k"``, distinct ids per position). As a distribution it is the renormalised
    $r_{t,j} = \mathrm{softmax}_j(\text{logprobs}_{t,j})$ on those ids and 0 elsewhere.
    Treated as a constant (no gradient)."""

    logprobs: Tensor
    indices: Tensor


def _kl_roles(direction: str, other) -> tuple[int, int]:
    """Return ``(P, Q)`` roles of $KL(P\\|Q)$: 0 = the view, 1 = ``other``."""
    if direction == "forward":
        return 1, 0
    if direction == "reverse":
        return 0, 1
    raise RlobjInputError(f"direction: expected 'forward' or 'reverse', got {direction!r}")


def _check_other(other, view: "VocabView") -> None:
    if not isinstance(other, VocabView):
        raise RlobjInputError(f"other: expected a VocabView, got {type(other).__name__}")
    if other.shape != view.shape or other.vocab_size != view.vocab_size:
        raise RlobjInputError(
            f"other: expected a view of shape (batch seq) = {view.shape} over "
            f"{view.vocab_size} tokens, got {other.shape} over {other.vocab_size} tokens"
        )
    if other.device != view.device:
        raise RlobjInputError(f"other: expected device {view.device}, got {other.device}")


@dataclass(frozen=True, eq=False)
class KL(_Query):
    r"""Full-vocabulary KL divergence between the view $\pi$ and ``other`` $\rho$:

    * ``direction="forward"``: $KL(\rho \| \pi) = \sum_v \rho_v(\log\rho_v - \log\pi_v)$
      (mass-covering for $\pi$; "forward KL" of DPH-RL, arXiv 2509.07430).
    * ``direction="reverse"``: $KL(\pi \| \rho) = \sum_v \pi_v(\log\pi_v - \log\rho_v)$
      (the usual reference penalty, mode-seeking for $\pi$).

    ``other`` is another :class:`VocabView` (gradients flow into both if both carry them) or a
    stored :class:`TopK` (forward direction only: $KL(r\|\pi) = \sum_j r_j(\log r_j -
    \log\pi_{i_j})$; the reverse KL against a distribution with k-token support is infinite).
    Gradients: $\partial KL(P\|Q)/\partial z^P = P \odot (\log P - \log Q - KL)$,
    $\partial KL(P\|Q)/\partial z^Q = Q - P$.
    """

    other: object
    direction: str = "forward"

    def _other(self):
        return self.other if isinstance(self.other, VocabView) else None

    def _data(self):
        if isinstance(self.other, TopK):
            return [self.other.logprobs, self.other.indices]
        return []

    def _gathers(self):
        return [(0, 1)] if isinstance(self.other, TopK) else []

    def _validate(self, view):
        _kl_roles(self.direction, self.other)
        if isinstance(self.other, TopK):
            if self.direction != "forward":
                raise RlobjInputError(
                    "direction: a stored TopK reference supports only direction='forward' "
                    f"(KL(topk || view)); got {self.direction!r}"
                )
            logprobs, indices = self.other.logprobs, self.other.indices
            if logprobs.dim() != 3 or tuple(logprobs.shape[:2]) != view.shape:
                raise RlobjInputError(
                    f"other.logprobs: expected shape (batch seq k) with batch seq = {view.shape}, "
                    f"got {tuple(logprobs.shape)}"
                )
            if tuple(indices.shape) != tuple(logprobs.shape) or indices.is_floating_point():
                raise RlobjInputError(
                    f"other.indices: expected integer ids of shape {tuple(logprobs.shape)}, "
                    f"got {indices.dtype} {tuple(indices.shape)}"
                )
        else:
            _check_other(self.other, view)

    def _accumulate(self, blk, src, data, gath, acc):
        if isinstance(self.other, TopK):
            return
        p_role, q_role = _kl_roles(self.direction, self.other)
        sp, sq = src[p_role], src[q_role]
        # a pairwise (torch.sum) reduction: the terms have both signs, unlike the entropy's
        diff = torch.sub(blk.z[sp], blk.z[sq], out=blk.scratch())
        _add_acc(acc, "pdiff", diff.mul_(blk.p(sp)).sum(dim=1))

    def _topk_reference(self, data, dtype):
        log_r = torch.log_softmax(data[0].to(dtype), dim=-1)
        return log_r, log_r.exp()

    def _finalize(self, stats, src, data, gath, acc):
        if isinstance(self.other, TopK):
            log_r, r = self._topk_reference(data, stats.dtype)
            log_pi = gath[0] - _col(stats.lse[src[0]])
            value = (r * (log_r - log_pi)).sum(dim=1)
            return value, {"kl": value}
        p_role, q_role = _kl_roles(self.direction, self.other)
        value = acc["pdiff"] - stats.lse[src[p_role]] + stats.lse[src[q_role]]
        return value, {"kl": value}

    def _backward(self, blk, src, data, gath, saved, g, grads):
        if isinstance(self.other, TopK):
            s = src[0]
            if s in grads:
                _, r = self._topk_reference(data, g.dtype)
                grads[s].add_alpha(g)
                grads[s].sparse.append((data[1].long(), -_col(g) * r))
            return
        p_role, q_role = _kl_roles(self.direction, self.other)
        sp, sq = src[p_role], src[q_role]
        if sp in grads:
            grads[sp].add_alpha(g * (blk.lse[sq] - blk.lse[sp] - saved["kl"]))
            grads[sp].zterms.append((g, sp))
            grads[sp].zterms.append((-g, sq))
        if sq in grads:
            grads[sq].add_alpha(g)
            grads[sq].pterms.append((-g, sp))


@dataclass(frozen=True, eq=False)
class JS(_Query):
    r"""Jensen-Shannon divergence between the view $\pi$ and ``other`` $\rho$ (symmetric,
    $0 \le JS \le \log 2$):
    $$ JS = \tfrac12 KL(\pi\|m) + \tfrac12 KL(\rho\|m), \qquad m = \tfrac12(\pi + \rho). $$
    Gradient $\partial JS/\partial z^\pi = \tfrac12\,\pi \odot (\log(\pi/m) - KL(\pi\|m))$ (and the
    same for $\rho$)."""

    other: object

    def _other(self):
        return self.other

    def _validate(self, view):
        _check_other(self.other, view)

    def _log_mid(self, blk, s, o):
        return torch.logaddexp(blk.logp(s), blk.logp(o)).sub_(_LOG2)

    def _accumulate(self, blk, src, data, gath, acc):
        s, o = src
        log_mid = self._log_mid(blk, s, o)
        _add_acc(acc, "pm", _rowdot(blk.p(s), blk.logp(s) - log_mid))
        _add_acc(acc, "qm", _rowdot(blk.p(o), blk.logp(o) - log_mid))

    def _finalize(self, stats, src, data, gath, acc):
        value = 0.5 * (acc["pm"] + acc["qm"])
        return value, {"pm": acc["pm"], "qm": acc["qm"]}

    def _backward(self, blk, src, data, gath, saved, g, grads):
        s, o = src
        log_mid = self._log_mid(blk, s, o)
        for role, key in ((s, "pm"), (o, "qm")):
            if role in grads:
                inner = (blk.logp(role) - log_mid).sub_(_col(saved[key]))
                grads[role].dense.append(inner.mul_(blk.p(role)).mul_(_col(0.5 * g)))


@dataclass(frozen=True, eq=False)
class FDivergence(_Query):
    r"""f-divergence with generator ``generator`` ($f$ convex, $f(1) = 0$), where ``other`` $Q$
    is the **sampler / weighting distribution** and the view $P$ is in the ratio's numerator:
    $$ D_f(P \| Q) = \sum_v Q_v\, f(P_v / Q_v) = \mathbb{E}_{v \sim Q}[f(u_v)], \qquad u = P/Q. $$
    Examples: $f(u) = u\log u$ gives $KL(P\|Q)$; $f(u) = -\log u$ or the k3 form
    $u - \log u - 1$ give $KL(Q\|P)$ (DPH-RL's forward KL with samples from $Q = \pi_0$);
    $f_{JS}(u) = u\log u - (u+1)\log\frac{u+1}{2}$ gives $2\,JS$. ``generator`` must be an
    elementwise torch function ``u -> f(u)``; its derivative is taken with autograd. Gradients:
    $\partial D/\partial z^P = a - P\sum a$ with $a = P f'(u)$ and
    $\partial D/\partial z^Q = c - Q\sum c$ with $c = Q(f(u) - u f'(u))$. Ratios above
    ``exp(88)`` overflow float32; use :class:`KL` / :class:`JS` there.
    """

    other: object
    generator: Callable[[Tensor], Tensor]
    extra_buffers = 3

    def _other(self):
        return self.other

    def _validate(self, view):
        _check_other(self.other, view)
        if not callable(self.generator):
            raise RlobjInputError(
                f"generator: expected a callable u -> f(u), got {type(self.generator).__name__}"
            )

    def _terms(self, blk, s, o):
        ratio = (blk.logp(s) - blk.logp(o)).exp_()
        with torch.enable_grad():
            leaf = ratio.detach().requires_grad_(True)
            value = self.generator(leaf)
            if not isinstance(value, Tensor) or value.shape != leaf.shape:
                raise RlobjInputError(
                    "generator: expected an elementwise function returning a tensor shaped like "
                    f"its input {tuple(leaf.shape)}, got {getattr(value, 'shape', type(value))}"
                )
            (slope,) = torch.autograd.grad(value.sum(), leaf)
        return ratio, value.detach(), slope

    def _accumulate(self, blk, src, data, gath, acc):
        s, o = src
        ratio, value, slope = self._terms(blk, s, o)
        q = blk.p(o)
        _add_acc(acc, "div", _rowdot(q, value))
        _add_acc(acc, "sum_a", _rowdot(blk.p(s), slope))
        _add_acc(acc, "sum_c", _rowdot(q, value - ratio * slope))

    def _finalize(self, stats, src, data, gath, acc):
        return acc["div"], {"sum_a": acc["sum_a"], "sum_c": acc["sum_c"]}

    def _backward(self, blk, src, data, gath, saved, g, grads):
        s, o = src
        ratio, value, slope = self._terms(blk, s, o)
        if s in grads:
            grads[s].dense.append((blk.p(s) * slope).mul_(_col(g)))
            grads[s].add_alpha(-g * saved["sum_a"])
        if o in grads:
            grads[o].dense.append((value - ratio * slope).mul_(blk.p(o)).mul_(_col(g)))
            grads[o].add_alpha(-g * saved["sum_c"])


@dataclass(frozen=True, eq=False)
class ProxyLogProb(_Query):
    r"""Lp-Reg's filtered, renormalised proxy log-probability of the sampled token (arXiv
    2510.03222; spec §1.1, hard filtering):
    $$ K_t = \{v : \pi_v \ge \kappa \max_u \pi_u\}\ (\text{``minp''}) \ \text{ or }\
       \{v : \pi_v \ge \kappa\}\ (\text{``fixed''}), \qquad
       \pi^{proxy}_v = \frac{e^{z_v/T}\,\mathbb 1[v \in K_t]}{\sum_{u \in K_t} e^{z_u/T}}, $$
    returning $\log \pi^{proxy}(o_t)$, or ``filtered_logp`` when $o_t \notin K_t$ (the reference
    masks filtered logits to -1e4, so their log-prob is about -1e4). $\pi$ and $K_t$ are those of
    the view (build it at temperature 1: the reference filters the raw logits); ``temperature``
    $T$ is the renormalisation temperature (the reference divides the filtered logits by the
    rollout temperature, Lp-Reg-dev ``dp_actor.py`` ``_forward_micro_batch``; $T = 1$ gives
    $\pi_v / \sum_{K_t}\pi_u$). In ``"fixed"`` mode, when no token reaches $\kappa$ every logit is
    filtered and the proxy is uniform, $-\log V$ for every token (the reference's softmax of
    an all -1e4 row). No gradient (the proxy is a detached target). Defaults: $\kappa = 0.02$,
    min-p, $T = 1$.
    """

    tokens: Tensor
    kappa: float = 0.02
    mode: str = "minp"
    filtered_logp: float = -1e4
    temperature: float = 1.0
    differentiable = False
    extra_buffers = 1

    def _data(self):
        return [self.tokens]

    def _gathers(self):
        return [(0, 0)]

    def _validate(self, view):
        _check_tokens("tokens", self.tokens, view)
        if self.mode == "minp":
            _check_probability("kappa", self.kappa, low_open=False)
        elif self.mode == "fixed":
            if not float(self.kappa) >= 0.0:
                raise RlobjInputError(f"kappa: expected a value >= 0, got {self.kappa}")
        else:
            raise RlobjInputError(f"mode: expected 'minp' or 'fixed', got {self.mode!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise RlobjInputError(f"temperature: expected a finite number > 0, got {self.temperature!r}")

    def _threshold(self, lse, row_max):
        log_kappa = math.log(self.kappa) if self.kappa > 0 else -math.inf
        if self.mode == "minp":
            return row_max + log_kappa
        return lse + log_kappa

    def _accumulate(self, blk, src, data, gath, acc):
        s = src[0]  # logits are shifted by the row max here: z <= 0, so exp(z / T) <= 1
        threshold = self._threshold(blk.lse[s], blk.max[s])
        kept = torch.sub(blk.z[s], _col(blk.max[s]), out=blk.scratch()).div_(self.temperature).exp_()
        kept.masked_fill_(blk.z[s] < _col(threshold), 0.0)
        _add_acc(acc, "kept", kept.sum(dim=1))
        _add_acc(acc, "columns", torch.full_like(kept[:, 0], kept.shape[1]))

    def _finalize(self, stats, src, data, gath, acc):
        s = src[0]
        token_logit = gath[0][:, 0]
        threshold = self._threshold(stats.lse[s], stats.max[s])
        kept = acc["kept"]
        empty = kept <= 0
        value = (token_logit - stats.max[s]) / self.temperature - torch.where(empty, torch.ones_like(kept), kept).log()
        filtered = torch.full_like(value, float(self.filtered_logp))
        value = torch.where(token_logit >= threshold, value, filtered)
        return torch.where(empty, -acc["columns"].log(), value), {}


@dataclass(frozen=True, eq=False)
class TopKMask(_Query):
    r"""Whether the sampled token is among the ``k`` most probable:
    $\#\{v : z_v > z_{o_t}\} < k$ (ties count in the token's favour)."""

    tokens: Tensor
    k: int = 1
    differentiable = False
    out_dtype = torch.bool

    def _data(self):
        return [self.tokens]

    def _gathers(self):
        return [(0, 0)]

    def _validate(self, view):
        _check_tokens("tokens", self.tokens, view)
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise RlobjInputError(f"k: expected a positive int, got {self.k!r}")

    def _accumulate(self, blk, src, data, gath, acc):
        s = src[0]
        _add_acc(acc, "above", (blk.z[s] > gath[0]).sum(dim=1))

    def _finalize(self, stats, src, data, gath, acc):
        return acc["above"] < self.k, {}


@dataclass(frozen=True, eq=False)
class TopPMask(_Query):
    r"""Whether the sampled token lies in the top-p nucleus of :class:`TopPEntropy` (same rule):
    $\sum_{v:\,z_v > z_{o_t}} \pi_v + \pi_{o_t} < p$."""

    tokens: Tensor
    p: float = 0.8
    differentiable = False
    out_dtype = torch.bool
    extra_buffers = 1

    def _data(self):
        return [self.tokens]

    def _gathers(self):
        return [(0, 0)]

    def _validate(self, view):
        _check_tokens("tokens", self.tokens, view)
        _check_probability("p", self.p)

    def _accumulate(self, blk, src, data, gath, acc):
        s = src[0]
        z = blk.z[s]
        above = torch.where(z > gath[0], blk.p(s), z.new_zeros(()), out=blk.scratch())
        _add_acc(acc, "above", above.sum(dim=1))

    def _finalize(self, stats, src, data, gath, acc):
        s = src[0]
        token_p = (gath[0][:, 0] - stats.lse[s]).exp()
        return acc["above"] + token_p < self.p, {}


# ---------------------------------------------------------------------------------------------
# the chunk engine and its autograd function
# ---------------------------------------------------------------------------------------------


@dataclass
class _Stats:
    """Per-row statistics of one token chunk, per source: the forward pass works on logits shifted
    by ``shift`` (the row max), so ``lse`` is the shifted log-normaliser and ``max`` is 0."""

    lse: dict
    max: dict
    shift: dict
    dtype: torch.dtype


@dataclass
class _Plan:
    sources: list
    queries: list
    src: list  # per query: (self source, other source or None)
    data_slots: list  # per query: list of slots in the flat tensor list
    n_rows: int
    rows: int
    cols: int
    vocab: int
    compute_dtype: torch.dtype
    device: torch.device

    # -- helpers ---------------------------------------------------------------------------
    def _blocks(self, tensors, r0, r1, v0, v1, ws):
        z, squash = {}, {}
        for s, source in enumerate(self.sources):
            z[s] = ws.get(f"z{s}", r1 - r0, v1 - v0)
            squash[s] = source.block(tensors, r0, r1, v0, v1, z[s])
        return z, squash

    def _data(self, tensors, qi, r0, r1):
        return [tensors[slot][r0:r1] for slot in self.data_slots[qi]]

    def _gather(self, blk, qi, data, gath):
        for j, (role, slot) in enumerate(self.queries[qi]._gathers()):
            index = data[slot].long()
            if index.dim() == 1:
                index = index.unsqueeze(1)
            inside, local = blk.in_block(index)
            values = blk.z[self.src[qi][role]].gather(1, local)
            gath[j] = torch.where(inside, values, gath[j]) if gath[j] is not None else values

    # -- forward ---------------------------------------------------------------------------
    def forward(self, tensors):
        n, cdt, dev = self.n_rows, self.compute_dtype, self.device
        outs = [[] for _ in self.queries]
        saved = [dict() for _ in self.queries]
        lse_all = {s: [] for s in range(len(self.sources))}
        vblocks = chunk_bounds(self.vocab, self.cols)
        ws = _Workspace(self.rows, self.cols, cdt, dev)
        for r0, r1 in chunk_bounds(n, self.rows):
            c = r1 - r0
            data = [self._data(tensors, qi, r0, r1) for qi in range(len(self.queries))]
            gath = [[None] * len(q._gathers()) for q in self.queries]
            accs = [dict() for _ in self.queries]
            if len(vblocks) == 1:
                z, squash = self._blocks(tensors, r0, r1, 0, self.vocab, ws)
                lse, shift, probs = {}, {}, {}
                for s in z:
                    # shift every row by its max logit, in place: z' = z - max <= 0, so the
                    # sums below have terms of one sign (no cancellation in the entropy)
                    shift[s] = z[s].amax(dim=1)
                    e = torch.exp(z[s].sub_(_col(shift[s])), out=ws.get(f"p{s}", c, self.vocab))
                    total = e.sum(dim=1)
                    lse[s] = total.log()
                    probs[s] = e.mul_(_col(total.reciprocal()))
                blk = _Block(z, squash, lse, 0, self.vocab, (r0, r1), ws)
                blk.max = {s: torch.zeros_like(shift[s]) for s in shift}
                for s in probs:
                    blk.set_p(s, probs[s])
                for qi, q in enumerate(self.queries):
                    self._gather(blk, qi, data[qi], gath[qi])
                    q._accumulate(blk, self.src[qi], data[qi], gath[qi], accs[qi])
                del blk, z, probs
            else:
                # pass 1: streaming log-sum-exp and the gathers
                mx = {s: torch.full((c,), -math.inf, dtype=cdt, device=dev) for s in lse_all}
                tot = {s: torch.zeros(c, dtype=cdt, device=dev) for s in lse_all}
                for v0, v1 in vblocks:
                    z, squash = self._blocks(tensors, r0, r1, v0, v1, ws)
                    blk = _Block(z, squash, None, v0, v1, (r0, r1), ws)
                    for s in z:
                        new_max = torch.maximum(mx[s], z[s].amax(dim=1))
                        rescale = (mx[s] - new_max).exp()
                        shifted = torch.sub(z[s], _col(new_max), out=blk.scratch())
                        block_sum = shifted.exp_().sum(dim=1)
                        tot[s] = tot[s] * rescale + block_sum
                        mx[s] = new_max
                    for qi in range(len(self.queries)):
                        self._gather(blk, qi, data[qi], gath[qi])
                shift = mx
                lse = {s: tot[s].log() for s in lse_all}
                for qi, q in enumerate(self.queries):  # gathers in shifted coordinates too
                    for j, (role, _) in enumerate(q._gathers()):
                        gath[qi][j] = gath[qi][j] - _col(shift[self.src[qi][role]])
                # pass 2: the queries' sums, on logits shifted by the row max
                for v0, v1 in vblocks:
                    z, squash = self._blocks(tensors, r0, r1, v0, v1, ws)
                    for s in z:
                        z[s].sub_(_col(shift[s]))
                    blk = _Block(z, squash, lse, v0, v1, (r0, r1), ws)
                    blk.max = {s: torch.zeros_like(shift[s]) for s in shift}
                    for qi, q in enumerate(self.queries):
                        q._accumulate(blk, self.src[qi], data[qi], gath[qi], accs[qi])
                del blk, z
            zero = {s: torch.zeros_like(shift[s]) for s in shift}
            stats = _Stats(lse=lse, max=zero, shift=shift, dtype=cdt)
            for s in lse_all:
                lse_all[s].append(lse[s] + shift[s])  # backward works on unshifted logits
            for qi, q in enumerate(self.queries):
                value, keep = q._finalize(stats, self.src[qi], data[qi], gath[qi], accs[qi])
                outs[qi].append(value)
                for key, tensor in keep.items():
                    saved[qi].setdefault(key, []).append(tensor)
        results = []
        for qi, q in enumerate(self.queries):
            dtype = q.out_dtype or cdt
            if outs[qi]:
                results.append(torch.cat(outs[qi]).to(dtype))
            else:
                results.append(torch.zeros(0, dtype=dtype, device=dev))
        lse_cat = [
            torch.cat(lse_all[s]) if lse_all[s] else torch.zeros(0, dtype=cdt, device=dev)
            for s in lse_all
        ]
        saved_cat = [
            {k: torch.cat(v) for k, v in saved[qi].items()} for qi in range(len(self.queries))
        ]
        return results, lse_cat, saved_cat

    # -- backward --------------------------------------------------------------------------
    def backward(self, tensors, lse_cat, saved_cat, out_grads, needs):
        cdt, dev = self.compute_dtype, self.device
        grads = [None] * len(tensors)
        active = [
            qi
            for qi, q in enumerate(self.queries)
            if q.differentiable and out_grads[qi] is not None
        ]
        # projection-source gradients are fully written by the first chunk (then accumulated)
        fills = self.n_rows > 0 and bool(active)
        source_needs = []
        for source in self.sources:
            need = False
            for slot in source.slots:
                if needs[slot]:
                    t = tensors[slot]
                    if source.kind == "hidden" and fills:
                        grads[slot] = torch.empty(t.shape, dtype=cdt, device=dev)
                    else:
                        dtype = cdt if source.kind == "hidden" else t.dtype
                        grads[slot] = torch.zeros(t.shape, dtype=dtype, device=dev)
                    need = True
            source_needs.append(need)
        if not any(source_needs) or not active:
            return grads
        vblocks = chunk_bounds(self.vocab, self.cols)
        ws = _Workspace(self.rows, self.cols, cdt, dev)
        for r0, r1 in chunk_bounds(self.n_rows, self.rows):
            c = r1 - r0
            data = {qi: self._data(tensors, qi, r0, r1) for qi in active}
            gath: list = []  # no gradient formula needs the gathered logits
            lse = {s: lse_cat[s][r0:r1] for s in range(len(self.sources))}
            saved = {qi: {k: v[r0:r1] for k, v in saved_cat[qi].items()} for qi in active}
            g = {qi: out_grads[qi][r0:r1].to(cdt) for qi in active}
            dhidden = {
                s: torch.empty(c, tensors[src.slots[0]].shape[1], dtype=cdt, device=dev)
                for s, src in enumerate(self.sources)
                if src.kind == "hidden" and needs[src.slots[0]]
            }
            for v0, v1 in vblocks:
                z, squash = self._blocks(tensors, r0, r1, v0, v1, ws)
                blk = _Block(z, squash, lse, v0, v1, (r0, r1), ws)
                collectors = {
                    s: _Grad(c, cdt, dev) for s in range(len(self.sources)) if source_needs[s]
                }
                for qi in active:
                    self.queries[qi]._backward(
                        blk, self.src[qi], data[qi], gath, saved[qi], g[qi], collectors
                    )
                for s, collector in collectors.items():
                    dz = collector.build(blk, s)
                    self.sources[s].backprop(
                        tensors, grads, r0, r1, v0, v1, dz, squash[s], dhidden.get(s)
                    )
                del blk, z, collectors
            for s, buffer in dhidden.items():
                grads[self.sources[s].slots[0]][r0:r1] = buffer
        for source in self.sources:
            for slot in source.slots:
                if grads[slot] is not None and grads[slot].dtype != tensors[slot].dtype:
                    grads[slot] = grads[slot].to(tensors[slot].dtype)
        return grads


class _VocabFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan, *tensors):
        results, lse_cat, saved_cat = plan.forward(tensors)
        keys = [sorted(d) for d in saved_cat]
        flat_saved = [d[k] for d, ks in zip(saved_cat, keys, strict=True) for k in ks]
        ctx.plan, ctx.keys, ctx.n_inputs = plan, keys, len(tensors)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*tensors, *lse_cat, *flat_saved)
        for q, r in zip(plan.queries, results, strict=True):
            if not q.differentiable:
                ctx.mark_non_differentiable(r)
        return tuple(results)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *out_grads):
        plan = ctx.plan
        stored = ctx.saved_tensors
        tensors = stored[: ctx.n_inputs]
        n_src = len(plan.sources)
        lse_cat = stored[ctx.n_inputs : ctx.n_inputs + n_src]
        rest = list(stored[ctx.n_inputs + n_src :])
        saved_cat = []
        for ks in ctx.keys:
            saved_cat.append({k: rest.pop(0) for k in ks})
        needs = ctx.needs_input_grad[1:]
        grads = plan.backward(tensors, lse_cat, saved_cat, out_grads, needs)
        return (None, *grads)


# ---------------------------------------------------------------------------------------------
# the public view
# ---------------------------------------------------------------------------------------------

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class VocabView:
    r"""Lazy handle to the next-token distributions $\pi(\cdot \mid s_t)$ at ``"batch seq"``
    positions, computed chunk by chunk and never as a whole ``[tokens, vocab]`` tensor.

    Build it with :meth:`from_hidden` (hidden states + output projection; nothing of size
    tokens x vocab is ever allocated, in forward or backward) or :meth:`from_logits` (given
    logits; only their gradient is full-size, in the logits' dtype). Every method returns a
    ``"batch seq"`` tensor; positions where the optional ``mask`` is False are not computed and
    hold 0 (False for boolean results) with zero gradient. Results are float32 (float64 for
    float64 inputs). Use :meth:`evaluate` to get several quantities from one pass.

    Chunking: ``chunk_size`` tokens per chunk and ``vocab_chunk_size`` vocabulary entries per
    block; ``None`` chooses them so that the work buffers of one chunk fit ``memory_budget`` bytes
    (default 512 MiB, see :func:`rlobj.ops.chunking.plan_chunks`), splitting the vocabulary only
    when one whole row would not fit.

    Example:
        >>> import torch
        >>> hidden, weight = torch.randn(2, 3, 8), torch.randn(11, 8)
        >>> view = VocabView.from_hidden(hidden, weight, chunk_size=4)
        >>> tokens = torch.randint(0, 11, (2, 3))
        >>> logits = hidden @ weight.T
        >>> expected = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]
        >>> torch.allclose(view.logp(tokens), expected, atol=1e-5)
        True
    """

    def __init__(
        self,
        *,
        kind: str,
        tensors: tuple,
        shape: tuple[int, int],
        vocab_size: int,
        temperature: float,
        softcap: float | None,
        chunk_size: int | None,
        vocab_chunk_size: int | None,
        memory_budget: int | None,
    ):
        """Internal: use :meth:`from_hidden` or :meth:`from_logits`."""
        self._kind = kind
        self._tensors = tensors
        self.shape = shape
        self.vocab_size = vocab_size
        self.temperature = temperature
        self.softcap = softcap
        self.chunk_size = chunk_size
        self.vocab_chunk_size = vocab_chunk_size
        self.memory_budget = memory_budget
        # validate the chunk settings now, so a bad value fails where it was given
        plan_chunks(1, vocab_size, 1, rows=chunk_size, cols=vocab_chunk_size, budget_bytes=memory_budget)

    # -- construction ----------------------------------------------------------------------
    @staticmethod
    def _check_scalars(temperature, softcap):
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise RlobjInputError(f"temperature: expected a finite number > 0, got {temperature!r}")
        if softcap is not None and not (
            isinstance(softcap, (int, float)) and math.isfinite(softcap) and softcap > 0
        ):
            raise RlobjInputError(f"softcap: expected None or a finite number > 0, got {softcap!r}")

    @classmethod
    @typechecked
    def from_hidden(
        cls,
        hidden: Float[Tensor, "batch seq hidden"],
        weight: Float[Tensor, "vocab hidden"],
        bias: Float[Tensor, " vocab"] | None = None,
        temperature: float = 1.0,
        softcap: float | None = None,
        chunk_size: int | None = None,
        *,
        vocab_chunk_size: int | None = None,
        memory_budget: int | None = None,
    ) -> "VocabView":
        r"""View of $\pi = \mathrm{softmax}(\mathrm{softcap}(h W^\top + b) / \tau)$.

        Args:
            hidden: final hidden states ``[batch, seq, hidden]`` at the positions that predict
                each response token (after the final norm).
            weight: output projection ``[vocab, hidden]`` (the ``lm_head`` weight), same dtype
                and device as ``hidden``.
            bias: optional output bias ``[vocab]``.
            temperature: logit temperature $\tau > 0$ (the sampling temperature).
            softcap: optional logit soft-cap $c$ (Gemma-style $c\tanh(x/c)$, applied before
                the temperature), or None.
            chunk_size: tokens per chunk, None for automatic.
            vocab_chunk_size: vocabulary entries per block, None for automatic.
            memory_budget: bytes of work buffers per chunk for the automatic choice.
        """
        cls._check_scalars(temperature, softcap)
        if hidden.dtype not in _FLOATS or weight.dtype != hidden.dtype:
            raise RlobjInputError(
                f"weight: expected the dtype of hidden ({hidden.dtype}), got {weight.dtype}"
            )
        if weight.device != hidden.device:
            raise RlobjInputError(
                f"weight: expected the device of hidden ({hidden.device}), got {weight.device}"
            )
        if bias is not None and (bias.device != hidden.device):
            raise RlobjInputError(
                f"bias: expected the device of hidden ({hidden.device}), got {bias.device}"
            )
        if hidden.dim() != 3 or weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
            raise RlobjInputError(
                "weight: expected shape (vocab hidden) with hidden = hidden.shape[-1] = "
                f"{hidden.shape[-1] if hidden.dim() else None}, got {tuple(weight.shape)} "
                f"(hidden has shape {tuple(hidden.shape)}, expected (batch seq hidden))"
            )
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise RlobjInputError(
                f"bias: expected shape (vocab,) = ({weight.shape[0]},), got {tuple(bias.shape)}"
            )
        batch, seq, _ = hidden.shape
        return cls(
            kind="hidden",
            tensors=(hidden, weight, bias),
            shape=(batch, seq),
            vocab_size=weight.shape[0],
            temperature=float(temperature),
            softcap=None if softcap is None else float(softcap),
            chunk_size=chunk_size,
            vocab_chunk_size=vocab_chunk_size,
            memory_budget=memory_budget,
        )

    @classmethod
    @typechecked
    def from_logits(
        cls,
        logits: Float[Tensor, "batch seq vocab"],
        temperature: float = 1.0,
        chunk_size: int | None = None,
        *,
        vocab_chunk_size: int | None = None,
        memory_budget: int | None = None,
    ) -> "VocabView":
        r"""View of $\pi = \mathrm{softmax}(\text{logits} / \tau)$ from given logits.

        Args:
            logits: ``[batch, seq, vocab]`` logits in any float dtype.
            temperature: logit temperature $\tau > 0$.
            chunk_size: tokens per chunk, None for automatic.
            vocab_chunk_size: vocabulary entries per block, None for automatic.
            memory_budget: bytes of work buffers per chunk for the automatic choice.
        """
        cls._check_scalars(temperature, None)
        if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.dtype not in _FLOATS:
            got = (logits.dtype, tuple(logits.shape)) if isinstance(logits, Tensor) else type(logits)
            raise RlobjInputError(f"logits: expected a float tensor (batch seq vocab), got {got}")
        batch, seq, vocab = logits.shape
        return cls(
            kind="logits",
            tensors=(logits,),
            shape=(batch, seq),
            vocab_size=vocab,
            temperature=float(temperature),
            softcap=None,
            chunk_size=chunk_size,
            vocab_chunk_size=vocab_chunk_size,
            memory_budget=memory_budget,
        )

    # -- properties ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._tensors[0].device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the inputs (hidden states or logits)."""
        return self._tensors[0].dtype

    @property
    def requires_grad(self) -> bool:
        return any(t is not None and t.requires_grad for t in self._tensors)

    def detach(self) -> "VocabView":
        """The same view on detached tensors (e.g. the old policy = the current one, no grad)."""
        tensors = tuple(None if t is None else t.detach() for t in self._tensors)
        return VocabView(
            kind=self._kind,
            tensors=tensors,
            shape=self.shape,
            vocab_size=self.vocab_size,
            temperature=self.temperature,
            softcap=self.softcap,
            chunk_size=self.chunk_size,
            vocab_chunk_size=self.vocab_chunk_size,
            memory_budget=self.memory_budget,
        )

    def __repr__(self) -> str:
        return (
            f"VocabView(from_{self._kind}, shape={self.shape}, vocab_size={self.vocab_size}, "
            f"dtype={self.dtype}, temperature={self.temperature}, softcap={self.softcap})"
        )

    # -- the fused evaluation --------------------------------------------------------------
    def _compute_dtype(self, views) -> torch.dtype:
        if any(v.dtype == torch.float64 for v in views):
            return torch.float64
        return torch.float32

    def _chunk_plan(self, queries, n_views: int, n_rows: int, cdt) -> ChunkPlan:
        full_rows = any(q.full_rows for q in queries)
        return plan_chunks(
            n_rows,
            self.vocab_size,
            4 * n_views + 1 + sum(q.extra_buffers for q in queries),
            rows=self.chunk_size,
            cols=self.vocab_size if full_rows else self.vocab_chunk_size,
            budget_bytes=self.memory_budget,
            element_bytes=8 if cdt == torch.float64 else 4,
        )

    def chunk_plan(self, *queries: _Query, n_rows: int | None = None) -> ChunkPlan:
        """The tiling :meth:`evaluate` would use for ``queries`` over ``n_rows`` tokens (default:
        all ``batch * seq`` positions): tokens per chunk and vocabulary entries per block."""
        views = {id(self)}
        for q in queries:
            if q._other() is not None:
                views.add(id(q._other()))
        n_rows = self.shape[0] * self.shape[1] if n_rows is None else n_rows
        others = [q._other() for q in queries if q._other() is not None]
        cdt = self._compute_dtype([self, *others])
        return self._chunk_plan(queries, len(views), n_rows, cdt)

    def evaluate(self, *queries: _Query, mask: Tensor | None = None) -> tuple[Tensor, ...]:
        r"""Compute several per-token quantities of this view in one chunked pass.

        Each query is one of :class:`LogProb`, :class:`Entropy`, :class:`TopPEntropy`,
        :class:`KL`, :class:`JS`, :class:`FDivergence`, :class:`ProxyLogProb`,
        :class:`TopKMask`, :class:`TopPMask`. All of them share one logits computation per chunk
        (per other view too) in forward and one recomputation in backward.

        Args:
            *queries: the quantities to compute.
            mask: optional ``"batch seq"`` bool; only True positions are computed, the others
                hold 0 / False with zero gradient.

        Returns:
            One ``"batch seq"`` tensor per query, in order.

        Example:
            >>> import torch
            >>> view = VocabView.from_logits(torch.randn(2, 3, 5))
            >>> logp, entropy = view.evaluate(LogProb(torch.zeros(2, 3, dtype=torch.long)), Entropy())
            >>> logp.shape, bool((entropy <= torch.log(torch.tensor(5.0)) + 1e-6).all())
            (torch.Size([2, 3]), True)
        """
        if not queries:
            raise RlobjInputError("queries: expected at least one query, got none")
        for q in queries:
            if not isinstance(q, _Query):
                raise RlobjInputError(
                    f"queries: expected LogProb, Entropy, KL, ... instances, got {type(q).__name__}"
                )
            q._validate(self)
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
                got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
                raise RlobjInputError(f"mask: expected a bool tensor, got {got}")
            if tuple(mask.shape) != self.shape:
                raise RlobjInputError(
                    f"mask: expected shape (batch seq) = {self.shape}, got {tuple(mask.shape)}"
                )
            if mask.device != self.device:
                raise RlobjInputError(f"mask: expected device {self.device}, got {mask.device}")

        # sources: this view first, then every distinct other view
        views: list[VocabView] = [self]
        src = []
        for q in queries:
            other = q._other()
            if other is None:
                src.append((0, None))
                continue
            for i, v in enumerate(views):
                if v is other:
                    src.append((0, i))
                    break
            else:
                views.append(other)
                src.append((0, len(views) - 1))
        cdt = self._compute_dtype(views)
        batch, seq = self.shape
        n_total = batch * seq
        index = None if mask is None else mask.reshape(-1).nonzero().squeeze(1)
        n_rows = n_total if index is None else int(index.numel())

        tensors: list[Tensor] = []
        sources = []
        for v in views:
            if v._kind == "hidden":
                hidden, weight, bias = v._tensors
                flat = hidden.reshape(n_total, hidden.shape[-1])
                if index is not None:
                    flat = flat.index_select(0, index)
                slots = [len(tensors), len(tensors) + 1]
                tensors += [flat, weight]
                if bias is not None:
                    slots.append(len(tensors))
                    tensors.append(bias)
                sources.append(_Source("hidden", slots, v.temperature, v.softcap, cdt))
            else:
                (logits,) = v._tensors
                slots = [len(tensors)]
                tensors.append(logits.reshape(n_total, v.vocab_size))
                sources.append(_Source("logits", slots, v.temperature, None, cdt, row_index=index))
        data_slots = []
        for q in queries:
            slots = []
            for d in q._data():
                flat = d.reshape(n_total, *d.shape[2:])
                if index is not None:
                    flat = flat.index_select(0, index)
                slots.append(len(tensors))
                tensors.append(flat)
            data_slots.append(slots)

        # tokens must be valid vocabulary ids where they are used
        for q, slots in zip(queries, data_slots, strict=True):
            for _, slot in q._gathers():
                ids = tensors[slots[slot]]
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
                    name = "tokens" if not isinstance(q, KL) else "other.indices"
                    raise RlobjInputError(
                        f"{name}: expected ids in [0, {self.vocab_size}) at valid positions, got "
                        f"values in [{int(ids.min())}, {int(ids.max())}]"
                    )

        chunk = self._chunk_plan(queries, len(views), n_rows, cdt)
        plan = _Plan(
            sources=sources,
            queries=list(queries),
            src=src,
            data_slots=data_slots,
            n_rows=n_rows,
            rows=chunk.rows,
            cols=chunk.cols,
            vocab=self.vocab_size,
            compute_dtype=cdt,
            device=self.device,
        )
        results = _VocabFunction.apply(plan, *tensors)
        outputs = []
        for value in results:
            if index is None:
                outputs.append(value.reshape(batch, seq))
            else:
                full = torch.zeros(n_total, dtype=value.dtype, device=value.device)
                outputs.append(full.index_put((index,), value).reshape(batch, seq))
        return tuple(outputs)

    # -- single-quantity shorthands ----------------------------------------------------------
    @typechecked
    def logp(
        self, tokens: Int[Tensor, "batch seq"], mask: Bool[Tensor, "batch seq"] | None = None
    ) -> Float[Tensor, "batch seq"]:
        r"""Sampled-token log-probs $\log\pi(o_t\mid s_t)$ (see :class:`LogProb`)."""
        return self.evaluate(LogProb(tokens), mask=mask)[0]

    @typechecked
    def entropy(self, mask: Bool[Tensor, "batch seq"] | None = None) -> Float[Tensor, "batch seq"]:
        r"""Full-vocabulary entropy $-\sum_v \pi_v\log\pi_v$ (see :class:`Entropy`)."""
        return self.evaluate(Entropy(), mask=mask)[0]

    @typechecked
    def top_p_entropy(
        self, p: float = 0.8, mask: Bool[Tensor, "batch seq"] | None = None, max_tokens: int | None = None
    ) -> Float[Tensor, "batch seq"]:
        r"""SIREN's renormalised nucleus entropy, nucleus = prefix strictly below ``p``, at most
        the top ``max_tokens`` tokens (see :class:`TopPEntropy` for the boundary and tie rules)."""
        return self.evaluate(TopPEntropy(p, max_tokens), mask=mask)[0]

    def kl(
        self, other, direction: str = "forward", mask: Tensor | None = None
    ) -> Float[Tensor, "batch seq"]:
        r"""Full-vocabulary KL: ``"forward"`` $KL(\text{other}\|\pi)$, ``"reverse"``
        $KL(\pi\|\text{other})$; ``other`` a :class:`VocabView` or a stored :class:`TopK`
        (forward only). See :class:`KL`."""
        return self.evaluate(KL(other, direction), mask=mask)[0]

    def js(self, other, mask: Tensor | None = None) -> Float[Tensor, "batch seq"]:
        r"""Jensen-Shannon divergence to ``other`` (see :class:`JS`)."""
        return self.evaluate(JS(other), mask=mask)[0]

    def f_divergence(
        self, other, generator: Callable[[Tensor], Tensor], mask: Tensor | None = None
    ) -> Float[Tensor, "batch seq"]:
        r"""$D_f(\pi\|\text{other}) = \sum_v \text{other}_v f(\pi_v/\text{other}_v)$: ``other``
        is the sampler (see :class:`FDivergence`)."""
        return self.evaluate(FDivergence(other, generator), mask=mask)[0]

    @typechecked
    def proxy_logp(
        self,
        tokens: Int[Tensor, "batch seq"],
        kappa: float = 0.02,
        mode: str = "minp",
        mask: Bool[Tensor, "batch seq"] | None = None,
        filtered_logp: float = -1e4,
        temperature: float = 1.0,
    ) -> Float[Tensor, "batch seq"]:
        r"""Lp-Reg proxy log-prob of the sampled token, no gradient (see :class:`ProxyLogProb`;
        ``temperature``: the renormalisation temperature, the rollout's in the reference)."""
        return self.evaluate(ProxyLogProb(tokens, kappa, mode, filtered_logp, temperature), mask=mask)[0]

    @typechecked
    def top_k_mask(
        self, tokens: Int[Tensor, "batch seq"], k: int, mask: Bool[Tensor, "batch seq"] | None = None
    ) -> Bool[Tensor, "batch seq"]:
        r"""True where the sampled token is among the ``k`` most probable (see :class:`TopKMask`)."""
        return self.evaluate(TopKMask(tokens, k), mask=mask)[0]

    @typechecked
    def top_p_mask(
        self, tokens: Int[Tensor, "batch seq"], p: float, mask: Bool[Tensor, "batch seq"] | None = None
    ) -> Bool[Tensor, "batch seq"]:
        r"""True where the sampled token lies in the top-p nucleus (see :class:`TopPMask`)."""
        return self.evaluate(TopPMask(tokens, p), mask=mask)[0]
