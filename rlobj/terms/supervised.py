r"""Supervised terms: negative log-likelihood on demonstrations (warm starts, hybrid RL + SFT).

The ``sft`` loss part is the per-token negative log-likelihood of demonstration tokens,
$\ell_{i,t} = -c \log \pi_\theta(y_{i,t} \mid x_i, y_{i,<t})$, aggregated by the chain's
aggregation like every other part. Used alone it is plain supervised fine-tuning; chained after
a surrogate it gives the hybrid objectives of LUFFY (Yan et al., arXiv 2504.14945), ViSurf
(arXiv 2510.10606) and GHPO (arXiv 2507.10628), where some rows (or tokens) of a batch are
demonstrations.
"""

import torch

from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean

__all__ = ["sft"]


class sft(Term, writes=("part:sft",)):
    r"""Negative log-likelihood of demonstration tokens: $\ell_{i,t} = -c\,\log\pi_\theta(y_{i,t})$.

    $$ \mathcal{L}_\text{sft} = \operatorname{agg}_{i,t}\big(-c \,\log \pi_\theta(y_{i,t}\mid x_i, y_{i,<t})\big)
       \quad\text{over tokens with } d_{i,t} = 1 $$

    where $d$ is the demonstration mask: the response ``mask`` by default (every sequence of the
    batch is a demonstration: supervised fine-tuning), or ``extras[mask_key]`` intersected with
    ``mask`` (only some rows or tokens are demonstrations, as in LUFFY, Yan et al.,
    arXiv 2504.14945, which mixes off-policy demonstrations into GRPO groups). The log-probs are
    ``logp`` by default, or ``extras[logp_key]`` (a separate forward over demonstrations of the
    same ``"batch seq"`` shape). Writes the loss part ``"sft"`` (global normalisation, so
    micro-batches and ranks add up), and the metric ``sft/nll`` (mean NLL over the selected tokens).

    Args:
        coef: $c \ge 0$. Default 1.0 (pure SFT); hybrid recipes use smaller weights.
        mask_key: name of a bool ``"batch seq"`` tensor in ``extras`` marking demonstration
            tokens, or ``None`` (default) for the response mask.
        logp_key: name of a float ``"batch seq"`` tensor in ``extras`` holding the demonstration
            log-probs (must carry gradient), or ``None`` (default) for ``logp``.

    Example:
        >>> import torch
        >>> out = sft().loss(logp=torch.log(torch.tensor([[0.5, 0.25]])), mask=torch.ones(1, 2, dtype=torch.bool))
        >>> round(float(out.loss), 4)  # (log 2 + log 4) / 2
        1.0397
    """

    coef: NonNegative = 1.0
    mask_key: str | None = None
    logp_key: str | None = None

    def __post_init__(self):
        for name in ("mask_key", "logp_key"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise RlobjInputError(f"sft.{name}: expected a non-empty string or None, got {value!r}")

    def slots_read(self) -> frozenset[str]:
        reads = {"mask"}
        reads.add(f"extras:{self.logp_key}" if self.logp_key else "logp")
        if self.mask_key:
            reads.add(f"extras:{self.mask_key}")
        return frozenset(reads)

    def __call__(self, state: State) -> State:
        if self.logp_key:
            logp = state.require(f"extras:{self.logp_key}")
            if not isinstance(logp, torch.Tensor) or tuple(logp.shape) != tuple(state.mask.shape):
                got = tuple(logp.shape) if isinstance(logp, torch.Tensor) else type(logp).__name__
                raise RlobjInputError(
                    f"sft: extras[{self.logp_key!r}] must have shape (batch seq) = "
                    f"{tuple(state.mask.shape)}, got {got}")
        else:
            logp = state.logp
        mask = state.mask
        if self.mask_key:
            demo = state.require(f"extras:{self.mask_key}")
            if not isinstance(demo, torch.Tensor) or tuple(demo.shape) != tuple(mask.shape):
                got = tuple(demo.shape) if isinstance(demo, torch.Tensor) else type(demo).__name__
                raise RlobjInputError(
                    f"sft: extras[{self.mask_key!r}] must be a bool tensor of shape (batch seq) = "
                    f"{tuple(mask.shape)}, got {got}")
            mask = mask & demo.bool()
        values = torch.where(mask, -self.coef * logp, torch.zeros((), dtype=logp.dtype))
        nll = masked_mean(-logp.detach(), mask) if bool(mask.any()) else torch.zeros(())
        return state.add_part("sft", LossPart(values, mask)).add_metrics(**{"sft/nll": nll})
