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

__all__ = ["world", "gather_rows", "local_rows", "row_offset"]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def row_offset(rows: int) -> int:
    """Index of this rank's first row in the global batch (the rows of lower ranks), 0 alone."""
    rank, size = world()
    if size == 1:
        return 0
    counts = [torch.zeros(1, dtype=torch.long) for _ in range(size)]
    torch.distributed.all_gather(counts, torch.tensor([rows], dtype=torch.long))
    return int(sum(int(c) for c in counts[:rank]))


def _all_gather_padded(value: Tensor, rows: list[int], width: int | None) -> list[Tensor]:
    """Each rank's ``value`` padded to the most rows (and to ``width`` columns), gathered, cut back."""
    shape = list(value.shape)
    shape[0] = max(rows)
    if width is not None:
        shape[1] = width
    dtype = value.dtype
    work = value.to(torch.uint8) if dtype == torch.bool else value
    padded = torch.zeros(shape, dtype=work.dtype, device=value.device)
    padded[tuple(slice(0, n) for n in value.shape)] = work
    pieces = [torch.empty_like(padded) for _ in rows]
    torch.distributed.all_gather(pieces, padded.contiguous())
    return [p[:n].to(dtype) for p, n in zip(pieces, rows)]


#: Per-row fields holding group ids: offset per rank so each rank's groups stay distinct.
GROUP_KEYS = ("group_ids", "partner_group")


def gather_rows(fields: Mapping[str, Any]) -> tuple[dict[str, Any], tuple]:
    """All ranks' rows of ``fields`` (tensors with the batch axis first), concatenated in rank order.

    Tensors whose second axis differs between ranks (``[batch, seq]`` with each rank's own
    padding) are right-padded with zeros to the widest rank; other shapes (``[batch, k]``) travel
    as they are. Group ids (``group_ids``, ``partner_group``) are offset so that rank ``r``'s
    groups follow rank ``r - 1``'s. Values that are not tensors with this rank's batch size pass
    through unchanged (they must be equal on every rank). Nested mappings (``extras``) are
    gathered the same way.

    Returns:
        ``(gathered, where)``: ``where`` is what :func:`local_rows` needs to cut this rank's rows
        back out.
    """
    rank, size = world()
    batch = _batch_size(fields)
    if size == 1 or batch is None:
        return dict(fields), (0, batch, None, None)
    flat = [(key, sub, value) for key, value in fields.items()
            for sub, value in (value.items() if isinstance(value, Mapping) else [(None, value)])
            if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == batch]
    meta = torch.tensor([batch] + [v.shape[1] if v.dim() >= 2 else -1 for _, _, v in flat], dtype=torch.long)
    metas = [torch.zeros_like(meta) for _ in range(size)]
    torch.distributed.all_gather(metas, meta)
    rows = [int(m[0]) for m in metas]
    start = sum(rows[:rank])
    gathered: dict[tuple, list[Tensor]] = {}
    widths: dict[tuple, int] = {}
    for index, (key, sub, value) in enumerate(flat):
        columns = [int(m[index + 1]) for m in metas]
        pad = max(columns) if len(set(columns)) > 1 else None
        gathered[(key, sub)] = _all_gather_padded(value, rows, pad)
        if value.dim() >= 2:
            widths[(key, sub)] = value.shape[1]
    ids = gathered.get(("group_ids", None))
    offsets, offset = [], 0
    for part in ids or [torch.zeros(n) for n in rows]:
        offsets.append(offset)
        offset += int(part.max()) + 1 if part.numel() else 0
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in fields.items()}
    for (key, sub), parts in gathered.items():
        if (sub or key) in GROUP_KEYS and ids is not None:
            parts = [p + o for p, o in zip(parts, offsets)]
        value = torch.cat(parts)
        if sub is None:
            out[key] = value
        else:
            out[key][sub] = value
    mask = out.get("mask")
    seq = (int(mask.shape[1]), int(fields["mask"].shape[1])) if isinstance(mask, Tensor) and mask.dim() == 2 else None
    return out, (start, batch, widths, seq)


def local_rows(value, where: tuple, key: str | None = None, sub: str | None = None):
    """This rank's rows (and its own width) of a tensor gathered by :func:`gather_rows`.

    ``key`` / ``sub`` name the field (``sub`` inside ``extras``) to restore its own width; a
    field made after the gather (advantages, an extra a term wrote) whose second axis is the
    gathered sequence width gets this rank's sequence width.
    """
    start, batch, widths, seq = where
    if widths is None or not isinstance(value, Tensor) or value.dim() == 0:
        return value
    value = value[start:start + batch]
    if value.dim() < 2:
        return value
    width = widths.get((key, sub))
    if width is None and seq is not None and value.shape[1] == seq[0]:
        width = seq[1]
    return value if width is None else value[:, :width]


def _batch_size(fields: Mapping[str, Any]) -> int | None:
    mask = fields.get("mask")
    if isinstance(mask, Tensor):
        return mask.shape[0]
    for value in fields.values():
        if isinstance(value, Tensor) and value.dim() >= 1:
            return value.shape[0]
    return None
