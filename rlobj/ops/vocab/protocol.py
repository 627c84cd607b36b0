r"""The query protocol: the small interface a per-token full-vocabulary quantity implements.

A *query* says what to compute at every token position from the whole next-token distribution
$\pi_t = \mathrm{softmax}(z_t)$ (and, for comparisons, the distribution $\rho_t$ of a second
view). The engine never builds the ``[tokens, vocab]`` tensor: it walks chunks of rows and
blocks of vocabulary columns and calls, for every chunk,

1. :meth:`VocabQuery.accumulate` on every block: add per-row sums to ``chunk.sums``;
2. :meth:`VocabQuery.finalize` once the row is complete: turn the sums and the row statistics
   into the per-token result, and keep the per-row tensors backward needs;
3. in backward, :meth:`VocabQuery.backward` on every block (recomputed): add
   $g_t \cdot \partial\,\text{out}_t / \partial z_t$ to a :class:`~rlobj.ops.vocab.blocks.LogitGradient`.

Every query also states its formula once more, densely, in :meth:`VocabQuery.dense` (whole
logits rows, plain torch, autograd for gradients): :class:`~rlobj.ops.vocab.dense.DenseView`
runs that to test the chunked code against. The generic queries live in
:mod:`rlobj.ops.vocab.queries`; a paper's own quantity (Lp-Reg's proxy log-probability,
SIREN's nucleus entropy) implements this protocol beside its term in ``rlobj.terms``.

Example (a query of the view only, no gradient): the probability mass above a logit threshold.

    >>> import torch
    >>> from dataclasses import dataclass
    >>> from rlobj.ops.vocab import VocabQuery, VocabView
    >>> @dataclass(frozen=True, eq=False)
    ... class MassAbove(VocabQuery):
    ...     threshold: float
    ...     differentiable = False
    ...     def accumulate(self, block, chunk):
    ...         probs, logits = block.probs(chunk.view), block.logits[chunk.view]
    ...         chunk.add("mass", torch.where(logits + chunk.shift() > self.threshold, probs, 0.0).sum(1))
    ...     def finalize(self, stats, chunk):
    ...         return chunk.sums["mass"], {}
    ...     def dense(self, logits, other_logits, data):
    ...         return torch.where(logits > self.threshold, logits.softmax(-1), 0.0).sum(-1)
    >>> view = VocabView.from_logits(torch.tensor([[[0.0, 1.0, 2.0]]]))
    >>> round(float(view.evaluate(MassAbove(0.5))[0]), 4)  # softmax: 0.0900, 0.2447, 0.6652
    0.91
    >>> from rlobj.ops.vocab import dense_evaluate
    >>> round(float(dense_evaluate(view, MassAbove(0.5))[0]), 4)
    0.91
"""

import abc
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab.blocks import LogitBlock, LogitGradient, RowStats

__all__ = ["VocabQuery", "SampledTokenQuery", "QueryChunk", "check_token_ids", "check_probability", "check_same_space",
           "row_dot"]


def row_dot(a: Tensor, b: Tensor) -> Tensor:
    """``(a * b).sum(-1)`` with torch's pairwise summation (more accurate than a matmul dot)."""
    return torch.mul(a, b).sum(dim=-1)


@dataclass
class QueryChunk:
    """One query's share of one chunk of token rows.

    Attributes:
        view: source index of the view the query is evaluated on (in ``block.logits`` etc.).
        other: source index of :meth:`VocabQuery.other_view` (None when it has none).
        data: the chunk's rows of every :meth:`VocabQuery.token_data` tensor (``[rows, ...]``).
        gathered: per :meth:`VocabQuery.gathered_ids` entry, the logits ``[rows, k]`` of that
            role's source at those ids, in the coordinates of the current pass (forward only).
        sums: per-row accumulators the query fills in :meth:`VocabQuery.accumulate`.
        shifts: ``{source: [rows]}`` the row max subtracted from the forward logits (add it back
            to compare a logit with an absolute threshold); forward only.
    """

    view: int
    other: int | None
    data: list
    gathered: list = field(default_factory=list)
    sums: dict = field(default_factory=dict)
    shifts: dict = field(default_factory=dict)

    def add(self, key: str, value: Tensor) -> None:
        """``sums[key] += value`` (creates it on the first block)."""
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    def shift(self, role: str = "view") -> Tensor:
        """The row max ``[rows, 1]`` subtracted from ``role``'s (``"view"``/``"other"``) logits."""
        return self.shifts[getattr(self, role)].unsqueeze(1)


class VocabQuery(abc.ABC):
    """Base of a per-token quantity of a :class:`~rlobj.ops.vocab.VocabView` (module docstring).

    Subclasses are frozen dataclasses holding their arguments; they override :meth:`finalize`
    and :meth:`dense`, and as needed :meth:`accumulate`, :meth:`backward`, :meth:`validate`,
    :meth:`token_data`, :meth:`gathered_ids` and :meth:`other_view`.

    Attributes:
        differentiable: False for results with no gradient (masks, detached targets).
        whole_rows: True when the query must see whole vocabulary rows in one block (a sort).
        extra_buffers: ``[rows, cols]`` temporaries it allocates per block (for chunk sizing).
        result_dtype: dtype of the result (None: the compute dtype, float32 or float64).
    """

    differentiable = True
    whole_rows = False
    extra_buffers = 0
    result_dtype: torch.dtype | None = None

    def other_view(self):
        """A second :class:`~rlobj.ops.vocab.VocabView` the query compares with, or None."""
        return None

    def token_data(self) -> list[Tensor]:
        """``"batch seq ..."`` tensors the engine cuts into the chunks' rows (``chunk.data``)."""
        return []

    def gathered_ids(self) -> list[tuple[int, int, str]]:
        """``(role, data_index, argument)`` entries: ``token_data()[data_index]`` holds vocabulary
        ids (``[batch, seq]`` or ``[batch, seq, k]``) at which the engine gathers the logits of
        role 0 (the view) or 1 (the other view) into ``chunk.gathered``; it checks the ids lie
        in the vocabulary and names ``argument`` when they do not."""
        return []

    def validate(self, view) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`~rlobj.ops.errors.RlobjInputError` for bad arguments (default: none)."""

    def accumulate(self, block: LogitBlock, chunk: QueryChunk) -> None:  # noqa: B027
        """Add this block's contribution to the per-row sums ``chunk.sums`` (default: none)."""

    @abc.abstractmethod
    def finalize(self, stats: RowStats, chunk: QueryChunk) -> tuple[Tensor, dict[str, Tensor]]:
        """The per-row result ``[rows]`` and the per-row tensors backward needs (``saved``)."""

    def backward(  # noqa: B027 (optional hook)
        self, block: LogitBlock, chunk: QueryChunk, saved: dict, grad_output: Tensor,
        gradients: dict[int, LogitGradient],
    ) -> None:
        """Add ``grad_output * d(result)/dz`` of this block to ``gradients[source]`` for every
        source that needs one (only the keys present do). Default: no gradient."""

    @abc.abstractmethod
    def dense(self, logits: Tensor, other_logits: Tensor | None, data: list[Tensor]) -> Tensor:
        """The same result from whole logits rows ``[n, vocab]`` (``other_logits`` those of
        :meth:`other_view`, ``data`` the ``token_data`` rows): the test reference, written
        directly from the formula (gradients through autograd)."""


class SampledTokenQuery(VocabQuery):
    """A query about the sampled token of each position: its ``tokens`` field (``"batch seq"``
    ids) is checked, cut into the chunks (``chunk.data[0]``) and its logit gathered
    (``chunk.gathered[0]``, ``[rows, 1]``). Subclasses declare ``tokens`` as their first field
    and call ``super().validate(view)`` when they check more."""

    def token_data(self):
        return [self.tokens]

    def gathered_ids(self):
        return [(0, 0, "tokens")]

    def validate(self, view):
        check_token_ids("tokens", self.tokens, view)


def check_token_ids(name: str, tokens, view) -> None:
    """Raise unless ``tokens`` is an integer tensor of the view's ``(batch, seq)`` shape."""
    if not isinstance(tokens, Tensor) or tokens.dtype not in (
        torch.int64, torch.int32, torch.int16, torch.uint8,
    ):
        got = tokens.dtype if isinstance(tokens, Tensor) else type(tokens).__name__
        raise RlobjInputError(f"{name}: expected an integer tensor of token ids, got {got}")
    if tuple(tokens.shape) != view.shape:
        raise RlobjInputError(
            f"{name}: expected shape (batch seq) = {view.shape}, got {tuple(tokens.shape)}"
        )


def check_probability(name: str, value: float, *, low_open: bool = True) -> float:
    """Raise unless ``value`` lies in ``(0, 1]`` (``[0, 1]`` when ``low_open`` is False)."""
    value = float(value)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise RlobjInputError(f"{name}: expected a value in {interval}, got {value}")
    return value


def check_same_space(other, view) -> None:
    """Raise unless ``other`` is a view of the same positions, vocabulary and device as ``view``."""
    if not isinstance(other, type(view)):
        raise RlobjInputError(f"other: expected a VocabView, got {type(other).__name__}")
    if other.shape != view.shape or other.vocab_size != view.vocab_size:
        raise RlobjInputError(
            f"other: expected a view of shape (batch seq) = {view.shape} over "
            f"{view.vocab_size} tokens, got {other.shape} over {other.vocab_size} tokens"
        )
    if other.device != view.device:
        raise RlobjInputError(f"other: expected device {view.device}, got {other.device}")
