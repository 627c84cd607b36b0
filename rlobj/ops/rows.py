"""Cutting the rows of a batch: the one row slicer behind rollouts, trainer batches and host adapters."""

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = ["cut_rows", "take_rows_of"]

T = TypeVar("T")


def cut_rows(value: Any, rows: slice | Tensor, batch_size: int) -> Any:
    """``value[rows]`` when ``value`` is a tensor whose first axis is the batch (``batch_size``
    rows); a tuple or list of one entry per row is cut alike; anything else is returned unchanged.

    Row indices (a tensor) are moved to the tensor's device first.

    Example:
        >>> cut_rows(torch.arange(6).reshape(3, 2), torch.tensor([2, 0]), 3).tolist()
        [[4, 5], [0, 1]]
        >>> cut_rows(("a", "b", "c"), torch.tensor([1]), 3), cut_rows(7, slice(0, 1), 3)
        (('b',), 7)
    """
    if isinstance(value, Tensor):
        if value.dim() == 0 or value.shape[0] != batch_size:
            return value
        return value[rows.to(value.device) if isinstance(rows, Tensor) else rows]
    if isinstance(value, (tuple, list)) and len(value) == batch_size:
        picked = value[rows] if isinstance(rows, slice) else [value[i] for i in rows.tolist()]
        return type(value)(picked)
    return value


def take_rows_of(batch: T, rows: slice | Tensor | Sequence[int], batch_size: int, **skip: Any) -> T:
    """A copy of the dataclass ``batch`` with every per-row field cut to ``rows`` (see
    :func:`cut_rows`); a field with a ``select(rows)`` method (e.g. vision inputs) cuts itself.
    Keyword arguments give fields their value as is (not cut).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Pair:
        ...     ids: Tensor
        ...     names: tuple
        >>> take_rows_of(Pair(torch.tensor([5, 6, 7]), ("a", "b", "c")), [2, 0], 3)
        Pair(ids=tensor([7, 5]), names=('c', 'a'))
    """
    if not isinstance(rows, (slice, Tensor)):
        rows = torch.as_tensor(list(rows), dtype=torch.long)
    changes = {}
    for field in dataclasses.fields(batch):
        if field.name in skip:
            changes[field.name] = skip[field.name]
            continue
        value = getattr(batch, field.name)
        select = getattr(value, "select", None)
        changes[field.name] = select(rows) if callable(select) and not isinstance(value, Tensor) \
            else cut_rows(value, rows, batch_size)
    return dataclasses.replace(batch, **changes)
