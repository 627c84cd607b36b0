r"""SIREN's top-p (nucleus) entropy (arXiv 2509.25133), as a full-vocabulary query.

The :class:`~rlobj.terms.regularizers.siren` term regularises the entropy of the nucleus of each
next-token distribution, renormalised inside it. :class:`TopPEntropy` computes it per token from
a :class:`~rlobj.ops.vocab.VocabView` through the :class:`~rlobj.ops.vocab.VocabQuery` protocol
(it needs whole vocabulary rows: a sort); :func:`top_p_entropy` is the one-call form.
"""

import math
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.typecheck import typechecked
from rlobj.ops.vocab import VocabQuery, VocabView
from rlobj.ops.vocab.blocks import as_column
from rlobj.ops.vocab.protocol import check_probability, row_dot

__all__ = ["TopPEntropy", "top_p_entropy"]


@dataclass(frozen=True, eq=False)
class TopPEntropy(VocabQuery):
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
    whole_rows = True
    extra_buffers = 4

    def validate(self, view):
        check_probability("p", self.p)
        if self.max_tokens is not None and (
            not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 1
        ):
            raise RlobjInputError(f"max_tokens: expected a positive int or None, got {self.max_tokens!r}")

    def _nucleus_size(self, log_probs_sorted: Tensor) -> Tensor:
        """Tokens in the nucleus per row, from the row's log-probabilities in decreasing order
        (a fresh tensor: it is overwritten)."""
        count = (log_probs_sorted.exp_().cumsum_(dim=-1) < self.p).sum(dim=-1)
        return count if self.max_tokens is None else count.clamp(max=self.max_tokens)

    def accumulate(self, block, chunk):
        view = chunk.view
        logits, lse = block.logits[view], block.lse[view]
        sorted_logits = torch.sort(logits, dim=1, descending=True).values
        count = self._nucleus_size(sorted_logits - as_column(lse))
        last = sorted_logits.gather(1, (count - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        threshold = torch.where(count > 0, last, torch.full_like(last, math.inf))
        del sorted_logits
        inside = torch.where(logits >= as_column(threshold), block.probs(view),
                             torch.zeros((), dtype=logits.dtype))
        chunk.sums["threshold"] = threshold
        chunk.sums["mass"] = inside.sum(dim=1)
        chunk.sums["p_dot_log_p"] = row_dot(inside, block.log_probs(view))

    def finalize(self, stats, chunk):
        mass = chunk.sums["mass"]
        empty = mass <= 0
        safe_mass = torch.where(empty, torch.ones_like(mass), mass)
        log_mass = safe_mass.log()
        entropy = torch.where(empty, torch.zeros_like(mass), log_mass - chunk.sums["p_dot_log_p"] / safe_mass)
        # backward sees unshifted logits: keep the shift so it can redo the exact same comparison
        saved = {
            "entropy": entropy,
            "threshold": chunk.sums["threshold"],
            "shift": stats.shift[chunk.view],
            "log_mass": log_mass,
        }
        return entropy, saved

    def backward(self, block, chunk, saved, grad_output, gradients):
        view = chunk.view
        if view not in gradients:
            return
        logits = block.logits[view]
        # -q (log q + H) = -(p / m) (z - lse - log m + H) on the nucleus
        scale = -grad_output / saved["log_mass"].exp()
        offset = saved["entropy"] - block.lse[view] - saved["log_mass"]
        grad = torch.addcmul(as_column(offset * scale), logits, as_column(scale)).mul_(block.probs(view))
        grad.masked_fill_((logits - as_column(saved["shift"])) < as_column(saved["threshold"]), 0.0)
        gradients[view].add_dense(grad)

    def dense(self, logits, other_logits, data):
        log_probs = torch.log_softmax(logits, -1)
        sorted_log_probs = torch.sort(log_probs, dim=-1, descending=True).values
        count = self._nucleus_size(sorted_log_probs.clone())
        last = sorted_log_probs.gather(-1, (count - 1).clamp(min=0)[:, None])
        inside = (log_probs >= last) & (count[:, None] > 0)  # the top `count`, ties enter together
        probs = torch.where(inside, log_probs.exp(), torch.zeros_like(log_probs))
        mass = probs.sum(-1, keepdim=True)
        q = probs / torch.where(mass > 0, mass, torch.ones_like(mass))  # q = pi / mass on the nucleus
        return -(q * torch.where(inside, q, torch.ones_like(q)).log()).sum(-1)  # 0 for an empty one


@typechecked
def top_p_entropy(
    view: VocabView,
    p: float = 0.8,
    mask: Bool[Tensor, "batch seq"] | None = None,
    max_tokens: int | None = None,
) -> Float[Tensor, "batch seq"]:
    r"""SIREN's renormalised nucleus entropy of ``view``: nucleus = prefix strictly below ``p``,
    at most the top ``max_tokens`` tokens (see :class:`TopPEntropy` for the boundary and tie rules).

    Example:
        >>> import torch
        >>> from rlobj.ops.vocab import VocabView
        >>> view = VocabView.from_logits(torch.log(torch.tensor([[[0.4, 0.25, 0.2, 0.15]]])))
        >>> round(float(top_p_entropy(view, p=0.7)), 4)  # nucleus {0.4, 0.25}: 0.4 + 0.25 < 0.7
        0.6663
    """
    return view.evaluate(TopPEntropy(p, max_tokens), mask=mask)[0]
