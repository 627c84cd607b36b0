r"""Batch-wide statistics over the global batch: rows of every data-parallel rank, gathered.

Batch-stage terms (group and batch statistics: ``batch_whiten``, ``group_mean_batch_std``,
``reinforce_pp``'s batch normalisation, quantile trackers, min/max) and the mini-batch
statistics of loss terms (top-entropy selection, covariance selection) must see the global
batch, not one rank's share, or two ranks would train differently from one process on the same
data. :func:`gather_rows` all-gathers per-row tensors (padding the sequence axis to the widest
rank and offsetting group ids so each rank's groups stay distinct); :func:`local_rows` cuts this
rank's rows back out. Without ``torch.distributed`` both are the identity. The gathered tensors
are small (per-token scalars, never activations or vocabularies).
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["world", "gather_rows", "local_rows"]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_gather_padded(value: Tensor, rows: list[int], width: int) -> list[Tensor]:
    """Each rank's ``value`` (rows x [seq x ...]) padded to the largest shape, gathered, cut back."""
    shape = list(value.shape)
    shape[0] = max(rows)
    if value.dim() >= 2:
        shape[1] = width
    dtype = value.dtype
    work = value.to(torch.uint8) if dtype == torch.bool else value
    padded = torch.zeros(shape, dtype=work.dtype, device=value.device)
    index = tuple(slice(0, n) for n in value.shape)
    padded[index] = work
    pieces = [torch.empty_like(padded) for _ in rows]
    torch.distributed.all_gather(pieces, padded.contiguous())
    return [p[:n].to(dtype) for p, n in zip(pieces, rows)]


def gather_rows(fields: Mapping[str, Any], group_key: str = "group_ids") -> tuple[dict[str, Any], tuple]:
    """All ranks' rows of ``fields`` (tensors with the batch axis first), concatenated in rank order.

    ``[batch, seq, ...]`` tensors are right-padded with zeros to the widest rank; ``group_key``
    is offset so that rank ``r``'s groups follow rank ``r - 1``'s. Values that are not tensors
    with this rank's batch size pass through unchanged (they must be equal on every rank).
    Nested mappings (``extras``) are gathered the same way.

    Returns:
        ``(gathered, where)``: ``where`` is what :func:`local_rows` needs to cut this rank's rows
        back out.
    """
    rank, size = world()
    batch = _batch_size(fields)
    if size == 1 or batch is None:
        return dict(fields), (0, batch, None)
    meta = torch.tensor([batch, _width(fields)], dtype=torch.long)
    metas = [torch.zeros_like(meta) for _ in range(size)]
    torch.distributed.all_gather(metas, meta)
    rows = [int(m[0]) for m in metas]
    width = max(int(m[1]) for m in metas)
    start = sum(rows[:rank])

    def gather(value, key):
        if not (isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == batch):
            return value
        parts = _all_gather_padded(value, rows, width)
        if key == group_key:
            offset, shifted = 0, []
            for part in parts:
                shifted.append(part + offset)
                offset += int(part.max()) + 1 if part.numel() else 0
            parts = shifted
        return torch.cat(parts)

    out = {}
    for key, value in fields.items():
        if isinstance(value, Mapping):
            out[key] = {k: gather(v, k) for k, v in value.items()}
        else:
            out[key] = gather(value, key)
    return out, (start, batch, _width(fields))


def local_rows(value, where: tuple):
    """This rank's rows (and sequence width) of a tensor gathered by :func:`gather_rows`."""
    start, batch, width = where
    if width is None or not isinstance(value, Tensor) or value.dim() == 0:
        return value
    value = value[start:start + batch]
    if value.dim() >= 2:
        value = value[:, :width]
    return value


def _batch_size(fields: Mapping[str, Any]) -> int | None:
    mask = fields.get("mask")
    if isinstance(mask, Tensor):
        return mask.shape[0]
    for value in fields.values():
        if isinstance(value, Tensor) and value.dim() >= 1:
            return value.shape[0]
    return None


def _width(fields: Mapping[str, Any]) -> int:
    mask = fields.get("mask")
    return int(mask.shape[1]) if isinstance(mask, Tensor) and mask.dim() == 2 else 0
