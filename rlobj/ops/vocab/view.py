r"""The public view: :class:`VocabView`, a lazy handle to full next-token distributions.

See :mod:`rlobj.ops.vocab` for the overview; the work is done by
:class:`~rlobj.ops.vocab.engine.ChunkedPass` on the queries of :mod:`rlobj.ops.vocab.queries`
(or any other :class:`~rlobj.ops.vocab.protocol.VocabQuery`).
"""

import math
from collections.abc import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.chunking import ChunkPlan, plan_chunks
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.typecheck import typechecked
from rlobj.ops.vocab.blocks import LogitSource
from rlobj.ops.vocab.engine import ChunkedPass, VocabFunction
from rlobj.ops.vocab.moved import moved
from rlobj.ops.vocab.protocol import VocabQuery
from rlobj.ops.vocab.queries import JS, KL, Entropy, FDivergence, LogProb, TopKMask, TopPMask

__all__ = ["VocabView"]

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
    @staticmethod
    def _compute_dtype(views) -> torch.dtype:
        if any(v.dtype == torch.float64 for v in views):
            return torch.float64
        return torch.float32

    def _chunk_plan(self, queries, n_views: int, n_rows: int, compute_dtype) -> ChunkPlan:
        whole_rows = any(q.whole_rows for q in queries)
        return plan_chunks(
            n_rows,
            self.vocab_size,
            4 * n_views + 1 + sum(q.extra_buffers for q in queries),
            rows=self.chunk_size,
            cols=self.vocab_size if whole_rows else self.vocab_chunk_size,
            budget_bytes=self.memory_budget,
            element_bytes=8 if compute_dtype == torch.float64 else 4,
        )

    def _views_of(self, queries) -> tuple[list["VocabView"], list[tuple[int, int | None]]]:
        """This view first, then every distinct other view; per query its (view, other) sources."""
        views: list[VocabView] = [self]
        query_sources = []
        for query in queries:
            other = query.other_view()
            if other is None:
                query_sources.append((0, None))
                continue
            for index, view in enumerate(views):
                if view is other:
                    query_sources.append((0, index))
                    break
            else:
                views.append(other)
                query_sources.append((0, len(views) - 1))
        return views, query_sources

    def chunk_plan(self, *queries: VocabQuery, n_rows: int | None = None) -> ChunkPlan:
        """The tiling :meth:`evaluate` would use for ``queries`` over ``n_rows`` tokens (default:
        all ``batch * seq`` positions): tokens per chunk and vocabulary entries per block."""
        views, _ = self._views_of(queries)
        n_rows = self.shape[0] * self.shape[1] if n_rows is None else n_rows
        return self._chunk_plan(queries, len(views), n_rows, self._compute_dtype(views))

    def _check_evaluate(self, queries, mask) -> None:
        if not queries:
            raise RlobjInputError("queries: expected at least one query, got none")
        for query in queries:
            if not isinstance(query, VocabQuery):
                raise RlobjInputError(
                    f"queries: expected LogProb, Entropy, KL, ... (VocabQuery) instances, got "
                    f"{type(query).__name__}"
                )
            query.validate(self)
        if mask is None:
            return
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise RlobjInputError(f"mask: expected a bool tensor, got {got}")
        if tuple(mask.shape) != self.shape:
            raise RlobjInputError(
                f"mask: expected shape (batch seq) = {self.shape}, got {tuple(mask.shape)}"
            )
        if mask.device != self.device:
            raise RlobjInputError(f"mask: expected device {self.device}, got {mask.device}")

    def _flat_inputs(self, views, queries, row_index, compute_dtype):
        """The flat tensor list of the autograd function, the sources and the data slots."""
        n_total = self.shape[0] * self.shape[1]
        tensors: list[Tensor] = []
        sources = []
        for view in views:
            if view._kind == "hidden":
                hidden, weight, bias = view._tensors
                flat = hidden.reshape(n_total, hidden.shape[-1])
                if row_index is not None:
                    flat = flat.index_select(0, row_index)
                slots = [len(tensors), len(tensors) + 1]
                tensors += [flat, weight]
                if bias is not None:
                    slots.append(len(tensors))
                    tensors.append(bias)
                sources.append(LogitSource("hidden", slots, view.temperature, view.softcap,
                                           compute_dtype))
            else:
                (logits,) = view._tensors
                slots = [len(tensors)]
                tensors.append(logits.reshape(n_total, view.vocab_size))
                sources.append(LogitSource("logits", slots, view.temperature, None, compute_dtype,
                                           row_index=row_index))
        data_slots = []
        for query in queries:
            slots = []
            for values in query.token_data():
                flat = values.reshape(n_total, *values.shape[2:])
                if row_index is not None:
                    flat = flat.index_select(0, row_index)
                slots.append(len(tensors))
                tensors.append(flat)
            data_slots.append(slots)
        # token ids must be valid vocabulary ids where they are used
        for query, slots in zip(queries, data_slots, strict=True):
            for _, data_index, argument in query.gathered_ids():
                ids = tensors[slots[data_index]]
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
                    raise RlobjInputError(
                        f"{argument}: expected ids in [0, {self.vocab_size}) at valid positions, "
                        f"got values in [{int(ids.min())}, {int(ids.max())}]"
                    )
        return tensors, sources, data_slots

    def evaluate(self, *queries: VocabQuery, mask: Tensor | None = None) -> tuple[Tensor, ...]:
        r"""Compute several per-token quantities of this view in one chunked pass.

        Each query is a :class:`~rlobj.ops.vocab.protocol.VocabQuery`: one of
        :class:`LogProb`, :class:`Entropy`, :class:`KL`, :class:`JS`, :class:`FDivergence`,
        :class:`TopKMask`, :class:`TopPMask`, or a term's own query (Lp-Reg's
        :class:`~rlobj.terms.regularizers.lp_reg_proxy.ProxyLogProb`, SIREN's
        :class:`~rlobj.terms.regularizers.siren_entropy.TopPEntropy`). All of them share one logits
        computation per chunk (per other view too) in forward and one recomputation in backward.

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
        self._check_evaluate(queries, mask)
        views, query_sources = self._views_of(queries)
        compute_dtype = self._compute_dtype(views)
        batch, seq = self.shape
        n_total = batch * seq
        row_index = None if mask is None else mask.reshape(-1).nonzero().squeeze(1)
        n_rows = n_total if row_index is None else int(row_index.numel())
        tensors, sources, data_slots = self._flat_inputs(views, queries, row_index, compute_dtype)
        tiling = self._chunk_plan(queries, len(views), n_rows, compute_dtype)
        chunked_pass = ChunkedPass(
            sources=sources,
            queries=list(queries),
            query_sources=query_sources,
            data_slots=data_slots,
            n_rows=n_rows,
            rows=tiling.rows,
            cols=tiling.cols,
            vocab=self.vocab_size,
            compute_dtype=compute_dtype,
            device=self.device,
        )
        results = VocabFunction.apply(chunked_pass, *tensors)
        outputs = []
        for value in results:
            if row_index is None:
                outputs.append(value.reshape(batch, seq))
            else:
                full = torch.zeros(n_total, dtype=value.dtype, device=value.device)
                outputs.append(full.index_put((row_index,), value).reshape(batch, seq))
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

    # -- deprecated: paper quantities, now beside their terms ---------------------------------
    def top_p_entropy(self, p: float = 0.8, mask: Tensor | None = None,
                      max_tokens: int | None = None) -> Tensor:
        r"""Deprecated: SIREN's nucleus entropy moved beside its term; use
        ``rlobj.terms.regularizers.siren_entropy.top_p_entropy(view, p, mask, max_tokens)``."""
        top_p_entropy = moved("top_p_entropy", "VocabView.top_p_entropy")
        return top_p_entropy(self, p, mask, max_tokens)

    def proxy_logp(self, tokens: Tensor, kappa: float = 0.02, mode: str = "minp",
                   mask: Tensor | None = None, filtered_logp: float = -1e4,
                   temperature: float = 1.0) -> Tensor:
        r"""Deprecated: Lp-Reg's proxy log-prob moved beside its term; use
        ``rlobj.terms.regularizers.lp_reg_proxy.proxy_logp(view, tokens, kappa, mode, mask, ...)``."""
        proxy_logp = moved("proxy_logp", "VocabView.proxy_logp")
        return proxy_logp(self, tokens, kappa, mode, mask, filtered_logp=filtered_logp,
                          temperature=temperature)
