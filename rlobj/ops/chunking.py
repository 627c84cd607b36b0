"""Chunk-size planning for computations over ``[tokens, vocab]`` that must never exist whole.

A chunked full-vocabulary computation holds a few ``[rows, columns]`` float32 work buffers at a
time (logits, probabilities, a gradient block, ...). Given how many such buffers a computation
needs per source distribution, :func:`plan_chunks` picks the number of token rows per chunk and,
when even a single row of the whole vocabulary would not fit the memory budget, the number of
vocabulary columns per block.
"""

from dataclasses import dataclass

from rlobj.ops.errors import RlobjInputError

__all__ = ["DEFAULT_MEMORY_BUDGET_BYTES", "ChunkPlan", "plan_chunks", "chunk_bounds"]

#: Default working-memory budget of one chunked computation (all its ``[rows, cols]`` buffers).
DEFAULT_MEMORY_BUDGET_BYTES = 512 * 2**20


@dataclass(frozen=True)
class ChunkPlan:
    """How to tile an ``[n_rows, n_cols]`` computation: ``rows`` per chunk, ``cols`` per block."""

    rows: int
    cols: int


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise RlobjInputError(f"{name}: expected a positive int or None, got {value!r}")


def plan_chunks(
    n_rows: int,
    n_cols: int,
    buffers: int,
    *,
    rows: int | None = None,
    cols: int | None = None,
    budget_bytes: int | None = None,
    element_bytes: int = 4,
) -> ChunkPlan:
    r"""Choose rows per chunk and columns per block so that ``buffers`` work tensors fit a budget.

    The work memory of one chunk is $\text{buffers} \cdot \text{rows} \cdot \text{cols} \cdot
    \text{element\_bytes}$. Defaults: whole rows (``cols = n_cols``) and as many rows as fit
    ``budget_bytes``; only if a single whole row does not fit is the vocabulary split into blocks
    (then one row per chunk). Explicit ``rows`` / ``cols`` override the automatic choice (they are
    clipped to ``n_rows`` / ``n_cols``).

    Args:
        n_rows: number of token rows (``>= 0``).
        n_cols: vocabulary size (``>= 1``).
        buffers: number of ``[rows, cols]`` work buffers the computation keeps alive at once.
        rows: tokens per chunk override, or None for automatic.
        cols: vocabulary entries per block override, or None for automatic.
        budget_bytes: working-memory budget; None means ``DEFAULT_MEMORY_BUDGET_BYTES``.
        element_bytes: bytes per buffer element (4 for float32 work buffers).

    Returns:
        A :class:`ChunkPlan` with ``1 <= rows <= max(n_rows, 1)`` and ``1 <= cols <= n_cols``.

    Example:
        >>> plan_chunks(2048, 151936, 4, budget_bytes=256 * 2**20)
        ChunkPlan(rows=110, cols=151936)
        >>> plan_chunks(10, 1000, 2, budget_bytes=800)
        ChunkPlan(rows=1, cols=100)
    """
    _check_positive("chunk_size", rows)
    _check_positive("vocab_chunk_size", cols)
    _check_positive("buffers", buffers)
    if budget_bytes is None:
        budget_bytes = DEFAULT_MEMORY_BUDGET_BYTES
    _check_positive("memory_budget", budget_bytes)
    n_rows_eff = max(int(n_rows), 1)
    bytes_per_element = buffers * element_bytes
    if cols is None:
        if rows is not None:
            cols = budget_bytes // (bytes_per_element * min(rows, n_rows_eff))
        else:
            cols = budget_bytes // bytes_per_element
        cols = max(1, min(n_cols, cols))
    cols = min(cols, n_cols)
    if rows is None:
        rows = max(1, budget_bytes // (bytes_per_element * cols))
    rows = min(rows, n_rows_eff)
    return ChunkPlan(rows=rows, cols=cols)


def chunk_bounds(total: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(total)`` in pieces of ``size`` (last may be short).

    Example:
        >>> chunk_bounds(10, 4)
        [(0, 4), (4, 8), (8, 10)]
    """
    return [(start, min(start + size, total)) for start in range(0, total, size)]
