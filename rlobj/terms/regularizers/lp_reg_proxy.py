r"""Lp-Reg's proxy log-probability (arXiv 2510.03222), as a full-vocabulary query.

The :class:`~rlobj.terms.regularizers.lp_reg` term pulls low-probability negative tokens towards
a *proxy* of the old policy: its next-token distribution with the unlikely tokens filtered out
and renormalised. :class:`ProxyLogProb` computes $\log\pi^\text{proxy}(o_t)$ of the sampled
tokens from a :class:`~rlobj.ops.vocab.VocabView`, chunk by chunk through the
:class:`~rlobj.ops.vocab.VocabQuery` protocol; :func:`proxy_logp` is the one-call form the
term and the trainer's provider use.
"""

import math
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.typecheck import typechecked
from rlobj.ops.vocab import VocabView
from rlobj.ops.vocab.blocks import as_column
from rlobj.ops.vocab.protocol import SampledTokenQuery, check_probability

__all__ = ["ProxyLogProb", "proxy_logp"]


@dataclass(frozen=True, eq=False)
class ProxyLogProb(SampledTokenQuery):
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

    def validate(self, view):
        super().validate(view)
        if self.mode == "minp":
            check_probability("kappa", self.kappa, low_open=False)
        elif self.mode == "fixed":
            if not float(self.kappa) >= 0.0:
                raise RlobjInputError(f"kappa: expected a value >= 0, got {self.kappa}")
        else:
            raise RlobjInputError(f"mode: expected 'minp' or 'fixed', got {self.mode!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise RlobjInputError(f"temperature: expected a finite number > 0, got {self.temperature!r}")

    def _threshold(self, lse: Tensor, row_max: Tensor) -> Tensor:
        """The smallest kept logit: $\\max z + \\log\\kappa$ (min-p) or $\\mathrm{lse} + \\log\\kappa$."""
        log_kappa = math.log(self.kappa) if self.kappa > 0 else -math.inf
        if self.mode == "minp":
            return row_max + log_kappa
        return lse + log_kappa

    def accumulate(self, block, chunk):
        view = chunk.view  # logits are shifted by the row max here: z <= 0, so exp(z / T) <= 1
        logits, row_max = block.logits[view], block.row_max[view]
        threshold = self._threshold(block.lse[view], row_max)
        kept = torch.sub(logits, as_column(row_max), out=block.scratch()).div_(self.temperature).exp_()
        kept.masked_fill_(logits < as_column(threshold), 0.0)
        chunk.add("kept_mass", kept.sum(dim=1))
        chunk.add("columns", torch.full_like(kept[:, 0], kept.shape[1]))

    def finalize(self, stats, chunk):
        view = chunk.view
        token_logit = chunk.gathered[0][:, 0]
        threshold = self._threshold(stats.lse[view], stats.row_max[view])
        kept = chunk.sums["kept_mass"]
        empty = kept <= 0
        value = (token_logit - stats.row_max[view]) / self.temperature \
            - torch.where(empty, torch.ones_like(kept), kept).log()
        filtered = torch.full_like(value, float(self.filtered_logp))
        value = torch.where(token_logit >= threshold, value, filtered)
        return torch.where(empty, -chunk.sums["columns"].log(), value), {}

    def dense(self, logits, other_logits, data):
        log_pi = torch.log_softmax(logits, -1)
        log_kappa = math.log(self.kappa) if self.kappa > 0 else -math.inf
        if self.mode == "minp":  # pi_v >= kappa max pi
            kept = log_pi >= log_pi.max(-1, keepdim=True).values + log_kappa
        else:  # pi_v >= kappa
            kept = log_pi >= log_kappa
        scaled = torch.where(kept, logits / self.temperature, torch.full_like(logits, -math.inf))
        proxy = torch.log_softmax(scaled, -1).gather(-1, data[0].long().unsqueeze(-1)).squeeze(-1)
        token_kept = kept.gather(-1, data[0].long().unsqueeze(-1)).squeeze(-1)
        value = torch.where(token_kept, proxy, torch.full_like(proxy, float(self.filtered_logp)))
        nothing_kept = ~kept.any(-1)
        return torch.where(nothing_kept, torch.full_like(value, -math.log(logits.shape[-1])), value)


@typechecked
def proxy_logp(
    view: VocabView,
    tokens: Int[Tensor, "batch seq"],
    kappa: float = 0.02,
    mode: str = "minp",
    mask: Bool[Tensor, "batch seq"] | None = None,
    filtered_logp: float = -1e4,
    temperature: float = 1.0,
) -> Float[Tensor, "batch seq"]:
    r"""Lp-Reg proxy log-prob of the sampled ``tokens`` under ``view``, no gradient (see
    :class:`ProxyLogProb`; ``temperature``: the renormalisation temperature, the rollout's in the
    reference).

    Example:
        >>> import torch
        >>> from rlobj.ops.vocab import VocabView
        >>> view = VocabView.from_logits(torch.log(torch.tensor([[[0.5, 0.3, 0.19, 0.01]]])))
        >>> round(float(proxy_logp(view, torch.tensor([[1]]), kappa=0.1).exp()), 4)  # 0.3 / 0.99
        0.303
    """
    return view.evaluate(ProxyLogProb(tokens, kappa, mode, filtered_logp, temperature), mask=mask)[0]
