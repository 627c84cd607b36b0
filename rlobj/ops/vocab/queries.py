r"""The generic per-token queries: log-prob, entropy, KL, JS, f-divergence, top-k / top-p membership.

Each states its formula and its gradient in the docstring and implements the
:class:`~rlobj.ops.vocab.protocol.VocabQuery` protocol (chunked sums, finalisation, analytic
gradient, and the dense formula the tests compare with). ``z`` are the logits of a row, $\pi$
the view's distribution, $\rho$ the other view's.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab.blocks import as_column
from rlobj.ops.vocab.protocol import (
    SampledTokenQuery,
    VocabQuery,
    check_probability,
    check_same_space,
    row_dot,
)

__all__ = ["LogProb", "Entropy", "TopK", "KL", "JS", "FDivergence", "TopKMask", "TopPMask"]

_LOG2 = math.log(2.0)


def _gather_ids(values: Tensor, ids: Tensor) -> Tensor:
    """``values[row, ids[row]]`` for ``[n, vocab]`` values and ``[n]`` ids."""
    return values.gather(-1, ids.long().unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True, eq=False)
class LogProb(SampledTokenQuery):
    r"""Log-probability of the sampled token: $\log\pi(o_t \mid s_t) = z_{t,o_t} -
    \operatorname{logsumexp}_v z_{t,v}$. Gradient $\partial/\partial z_t = \mathrm{onehot}(o_t) -
    \pi(\cdot \mid s_t)$."""

    tokens: Tensor

    def finalize(self, stats, chunk):
        return chunk.gathered[0][:, 0] - stats.lse[chunk.view], {}

    def backward(self, block, chunk, saved, grad_output, gradients):
        if chunk.view in gradients:
            gradients[chunk.view].add_probs(-grad_output)
            gradients[chunk.view].add_at(chunk.data[0].long().unsqueeze(1), grad_output.unsqueeze(1))

    def dense(self, logits, other_logits, data):
        return _gather_ids(torch.log_softmax(logits, -1), data[0])


@dataclass(frozen=True, eq=False)
class Entropy(VocabQuery):
    r"""Full-vocabulary entropy $H_t = -\sum_v \pi_v \log \pi_v = \operatorname{logsumexp}(z_t) -
    \sum_v \pi_v z_{t,v}$. Gradient $\partial H/\partial z_v = -\pi_v(\log\pi_v + H)$."""

    def accumulate(self, block, chunk):
        view = chunk.view
        products = torch.mul(block.probs(view), block.logits[view], out=block.scratch())
        chunk.add("prob_dot_logits", products.sum(dim=1))

    def finalize(self, stats, chunk):
        entropy = stats.lse[chunk.view] - chunk.sums["prob_dot_logits"]
        return entropy, {"entropy": entropy}

    def backward(self, block, chunk, saved, grad_output, gradients):
        view = chunk.view
        if view in gradients:
            gradients[view].add_probs(-grad_output * (saved["entropy"] - block.lse[view]))
            gradients[view].add_probs_times_logits(-grad_output, view)

    def dense(self, logits, other_logits, data):
        log_probs = torch.log_softmax(logits, -1)
        return -(log_probs.exp() * log_probs).sum(-1)


@dataclass(frozen=True, eq=False)
class TopK:
    r"""A stored top-k of a reference distribution: ``logprobs`` and vocabulary ``indices``
    (``"batch seq k"``, distinct ids per position). As a distribution it is the renormalised
    $r_{t,j} = \mathrm{softmax}_j(\text{logprobs}_{t,j})$ on those ids and 0 elsewhere.
    Treated as a constant (no gradient)."""

    logprobs: Tensor
    indices: Tensor


def _kl_roles(direction: str) -> tuple[str, str]:
    """``(P, Q)`` of $KL(P\\|Q)$ as ``"view"`` / ``"other"``."""
    if direction == "forward":
        return "other", "view"
    if direction == "reverse":
        return "view", "other"
    raise RlobjInputError(f"direction: expected 'forward' or 'reverse', got {direction!r}")


@dataclass(frozen=True, eq=False)
class KL(VocabQuery):
    r"""Full-vocabulary KL divergence between the view $\pi$ and ``other`` $\rho$:

    * ``direction="forward"``: $KL(\rho \| \pi) = \sum_v \rho_v(\log\rho_v - \log\pi_v)$
      (mass-covering for $\pi$; "forward KL" of DPH-RL, arXiv 2509.07430).
    * ``direction="reverse"``: $KL(\pi \| \rho) = \sum_v \pi_v(\log\pi_v - \log\rho_v)$
      (the usual reference penalty, mode-seeking for $\pi$).

    ``other`` is another :class:`~rlobj.ops.vocab.VocabView` (gradients flow into both if both
    carry them) or a stored :class:`TopK` (forward direction only: $KL(r\|\pi) = \sum_j r_j(\log
    r_j - \log\pi_{i_j})$; the reverse KL against a distribution with k-token support is
    infinite). Gradients: $\partial KL(P\|Q)/\partial z^P = P \odot (\log P - \log Q - KL)$,
    $\partial KL(P\|Q)/\partial z^Q = Q - P$.
    """

    other: object
    direction: str = "forward"

    def _stored(self) -> bool:
        return isinstance(self.other, TopK)

    def other_view(self):
        return None if self._stored() else self.other

    def token_data(self):
        return [self.other.logprobs, self.other.indices] if self._stored() else []

    def gathered_ids(self):
        return [(0, 1, "other.indices")] if self._stored() else []

    def validate(self, view):
        _kl_roles(self.direction)
        if not self._stored():
            check_same_space(self.other, view)
            return
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

    def _sources(self, chunk) -> tuple[int, int]:
        p_role, q_role = _kl_roles(self.direction)
        return getattr(chunk, p_role), getattr(chunk, q_role)

    def accumulate(self, block, chunk):
        if self._stored():
            return
        p, q = self._sources(chunk)
        # a pairwise (torch.sum) reduction: the terms have both signs, unlike the entropy's
        difference = torch.sub(block.logits[p], block.logits[q], out=block.scratch())
        chunk.add("p_dot_difference", difference.mul_(block.probs(p)).sum(dim=1))

    @staticmethod
    def _reference(logprobs: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        log_r = torch.log_softmax(logprobs.to(dtype), dim=-1)
        return log_r, log_r.exp()

    def finalize(self, stats, chunk):
        if self._stored():
            log_r, r = self._reference(chunk.data[0], stats.dtype)
            log_pi = chunk.gathered[0] - as_column(stats.lse[chunk.view])
            value = (r * (log_r - log_pi)).sum(dim=1)
            return value, {"kl": value}
        p, q = self._sources(chunk)
        value = chunk.sums["p_dot_difference"] - stats.lse[p] + stats.lse[q]
        return value, {"kl": value}

    def backward(self, block, chunk, saved, grad_output, gradients):
        g = grad_output  # the upstream gradient, per row
        if self._stored():
            if chunk.view in gradients:
                _, r = self._reference(chunk.data[0], g.dtype)
                gradients[chunk.view].add_probs(g)
                gradients[chunk.view].add_at(chunk.data[1].long(), -as_column(g) * r)
            return
        p, q = self._sources(chunk)
        if p in gradients:
            gradients[p].add_probs(g * (block.lse[q] - block.lse[p] - saved["kl"]))
            gradients[p].add_probs_times_logits(g, p)
            gradients[p].add_probs_times_logits(-g, q)
        if q in gradients:
            gradients[q].add_probs(g)
            gradients[q].add_probs_of(-g, p)

    def dense(self, logits, other_logits, data):
        log_pi = torch.log_softmax(logits, -1)
        if self._stored():
            log_r = torch.log_softmax(data[0].to(logits.dtype), -1)
            return (log_r.exp() * (log_r - log_pi.gather(-1, data[1].long()))).sum(-1)
        log_rho = torch.log_softmax(other_logits, -1)
        log_p, log_q = (log_rho, log_pi) if self.direction == "forward" else (log_pi, log_rho)
        return (log_p.exp() * (log_p - log_q)).sum(-1)


@dataclass(frozen=True, eq=False)
class JS(VocabQuery):
    r"""Jensen-Shannon divergence between the view $\pi$ and ``other`` $\rho$ (symmetric,
    $0 \le JS \le \log 2$):
    $$ JS = \tfrac12 KL(\pi\|m) + \tfrac12 KL(\rho\|m), \qquad m = \tfrac12(\pi + \rho). $$
    Gradient $\partial JS/\partial z^\pi = \tfrac12\,\pi \odot (\log(\pi/m) - KL(\pi\|m))$ (and the
    same for $\rho$)."""

    other: object

    def other_view(self):
        return self.other

    def validate(self, view):
        check_same_space(self.other, view)

    @staticmethod
    def _log_mid(block, chunk):
        return torch.logaddexp(block.log_probs(chunk.view), block.log_probs(chunk.other)).sub_(_LOG2)

    def accumulate(self, block, chunk):
        log_mid = self._log_mid(block, chunk)
        for source, key in ((chunk.view, "kl_view_mid"), (chunk.other, "kl_other_mid")):
            chunk.add(key, row_dot(block.probs(source), block.log_probs(source) - log_mid))

    def finalize(self, stats, chunk):
        kl_view, kl_other = chunk.sums["kl_view_mid"], chunk.sums["kl_other_mid"]
        return 0.5 * (kl_view + kl_other), {"kl_view_mid": kl_view, "kl_other_mid": kl_other}

    def backward(self, block, chunk, saved, grad_output, gradients):
        log_mid = self._log_mid(block, chunk)
        for source, key in ((chunk.view, "kl_view_mid"), (chunk.other, "kl_other_mid")):
            if source in gradients:
                inner = (block.log_probs(source) - log_mid).sub_(as_column(saved[key]))
                gradients[source].add_dense(
                    inner.mul_(block.probs(source)).mul_(as_column(0.5 * grad_output))
                )

    def dense(self, logits, other_logits, data):
        p, q = torch.softmax(logits, -1), torch.softmax(other_logits, -1)
        mid = (p + q) / 2
        return 0.5 * (p * (p / mid).log()).sum(-1) + 0.5 * (q * (q / mid).log()).sum(-1)


@dataclass(frozen=True, eq=False)
class FDivergence(VocabQuery):
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

    def other_view(self):
        return self.other

    def validate(self, view):
        check_same_space(self.other, view)
        if not callable(self.generator):
            raise RlobjInputError(
                f"generator: expected a callable u -> f(u), got {type(self.generator).__name__}"
            )

    def _ratio_terms(self, block, chunk) -> tuple[Tensor, Tensor, Tensor]:
        """``(u, f(u), f'(u))`` on the block."""
        ratio = (block.log_probs(chunk.view) - block.log_probs(chunk.other)).exp_()
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

    def accumulate(self, block, chunk):
        ratio, value, slope = self._ratio_terms(block, chunk)
        q = block.probs(chunk.other)
        chunk.add("divergence", row_dot(q, value))
        chunk.add("sum_a", row_dot(block.probs(chunk.view), slope))
        chunk.add("sum_c", row_dot(q, value - ratio * slope))

    def finalize(self, stats, chunk):
        return chunk.sums["divergence"], {"sum_a": chunk.sums["sum_a"], "sum_c": chunk.sums["sum_c"]}

    def backward(self, block, chunk, saved, grad_output, gradients):
        ratio, value, slope = self._ratio_terms(block, chunk)
        g = as_column(grad_output)  # the upstream gradient, as a column
        if chunk.view in gradients:
            gradients[chunk.view].add_dense((block.probs(chunk.view) * slope).mul_(g))
            gradients[chunk.view].add_probs(-grad_output * saved["sum_a"])
        if chunk.other in gradients:
            gradients[chunk.other].add_dense((value - ratio * slope).mul_(block.probs(chunk.other)).mul_(g))
            gradients[chunk.other].add_probs(-grad_output * saved["sum_c"])

    def dense(self, logits, other_logits, data):
        p, q = torch.softmax(logits, -1), torch.softmax(other_logits, -1)
        return (q * self.generator(p / q)).sum(-1)


@dataclass(frozen=True, eq=False)
class TopKMask(SampledTokenQuery):
    r"""Whether the sampled token is among the ``k`` most probable:
    $\#\{v : z_v > z_{o_t}\} < k$ (ties count in the token's favour)."""

    tokens: Tensor
    k: int = 1
    differentiable = False
    result_dtype = torch.bool

    def validate(self, view):
        super().validate(view)
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise RlobjInputError(f"k: expected a positive int, got {self.k!r}")

    def accumulate(self, block, chunk):
        chunk.add("above", (block.logits[chunk.view] > chunk.gathered[0]).sum(dim=1))

    def finalize(self, stats, chunk):
        return chunk.sums["above"] < self.k, {}

    def dense(self, logits, other_logits, data):
        token_logit = _gather_ids(logits, data[0]).unsqueeze(-1)
        return (logits > token_logit).sum(-1) < self.k


@dataclass(frozen=True, eq=False)
class TopPMask(SampledTokenQuery):
    r"""Whether the sampled token lies in the top-p nucleus: the probability of the tokens
    strictly more likely than it, plus its own, stays below ``p``:
    $\sum_{v:\,z_v > z_{o_t}} \pi_v + \pi_{o_t} < p$ (the token that crosses ``p`` is out)."""

    tokens: Tensor
    p: float = 0.8
    differentiable = False
    result_dtype = torch.bool
    extra_buffers = 1

    def validate(self, view):
        super().validate(view)
        check_probability("p", self.p)

    def accumulate(self, block, chunk):
        logits = block.logits[chunk.view]
        above = torch.where(logits > chunk.gathered[0], block.probs(chunk.view), logits.new_zeros(()),
                            out=block.scratch())
        chunk.add("mass_above", above.sum(dim=1))

    def finalize(self, stats, chunk):
        token_prob = (chunk.gathered[0][:, 0] - stats.lse[chunk.view]).exp()
        return chunk.sums["mass_above"] + token_prob < self.p, {}

    def dense(self, logits, other_logits, data):
        probs = torch.softmax(logits, -1)
        token_logit = _gather_ids(logits, data[0]).unsqueeze(-1)
        above = torch.where(logits > token_logit, probs, torch.zeros_like(probs)).sum(-1)
        return above + _gather_ids(probs, data[0]) < self.p
