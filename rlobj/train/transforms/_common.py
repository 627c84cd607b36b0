"""Helpers shared by the batch transforms: groups of a :class:`Batch`, resampling, merging."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, StepContext


def group_rows(group_ids: Tensor) -> dict[int, list[int]]:
    """Rows of each group, groups in order of first appearance."""
    rows: dict[int, list[int]] = {}
    for row, gid in enumerate(group_ids.tolist()):
        rows.setdefault(gid, []).append(row)
    return rows


def prompts(batch: Batch) -> tuple[list[int], list[dict]]:
    """The group ids in order of first appearance and the record of each group's first row."""
    rows = group_rows(batch.rollout.group_ids)
    return list(rows), [batch.records[r[0]] for r in rows.values()]


def criterion(batch: Batch, field: str | None, by: str) -> Tensor:
    """``[batch]`` float values a filter tests: the rewards, or the named score field."""
    if field is None:
        return batch.rewards
    try:
        values = batch.score_field(field)
    except RlobjInputError as error:
        raise RlobjInputError(f"{by}: {error}") from error
    if values.dim() != 1:
        raise RlobjInputError(f"{by}: score field {field!r} must hold one number per row, got shape "
                              f"{tuple(values.shape)}")
    return values.to(torch.float32)


def ragged_field(batch: Batch, name: str, by: str) -> tuple[Tensor, Tensor]:
    """Per-row number lists of a score field, right-padded: ``(values [batch, k] float32, mask [batch, k])``.

    Rows may hold lists of different lengths (a response's process steps), or a single number.
    """
    if batch.scores is None:
        raise RlobjInputError(f"{by}: the batch has not been scored; it reads the score field {name!r}")
    missing = [b for b, s in enumerate(batch.scores) if name not in s.fields]
    if missing:
        raise RlobjInputError(f"{by}: the scorer gave no score field {name!r} (rows {missing[:8]}); use a "
                              f"scorer that reports it in Score.fields, or name the field it uses")
    lists = []
    for b, score in enumerate(batch.scores):
        value = score.fields[name]
        if isinstance(value, Tensor):
            value = value.flatten().tolist()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        try:
            value = [float(v) for v in value]
        except (TypeError, ValueError) as error:
            raise RlobjInputError(f"{by}: score field {name!r} of row {b} must be a number or a list of "
                                  f"numbers, got {score.fields[name]!r}") from error
        lists.append(value)
    width = max([1] + [len(v) for v in lists])
    values = torch.zeros(len(lists), width, dtype=torch.float32)
    mask = torch.zeros(len(lists), width, dtype=torch.bool)
    for b, value in enumerate(lists):
        values[b, :len(value)] = torch.tensor(value, dtype=torch.float32)
        mask[b, :len(value)] = True
    return values, mask


def keep_rows(batch: Batch, keep: Tensor) -> Batch:
    """The rows where ``keep`` (bool ``[batch]``) is True, in order."""
    return batch.select(keep.nonzero().flatten().cpu())


def select_groups(batch: Batch, gids: Sequence[int]) -> Batch:
    """The rows of the groups ``gids``, group after group (rows of a group in their order)."""
    rows = group_rows(batch.rollout.group_ids)
    return batch.select([r for gid in gids for r in rows[gid]])


def with_metrics(batch: Batch, **metrics: float) -> Batch:
    """``batch`` with ``metrics`` added to its step metrics (a new Batch; the input is unchanged)."""
    return dataclasses.replace(batch, metrics={**batch.metrics, **{k: float(v) for k, v in metrics.items()}})


def with_group_ids(batch: Batch, group_ids: Sequence[int] | Tensor) -> Batch:
    ids = torch.as_tensor(group_ids, dtype=batch.rollout.group_ids.dtype, device=batch.rollout.group_ids.device)
    return dataclasses.replace(batch, rollout=dataclasses.replace(batch.rollout, group_ids=ids))


def concat(batches: Sequence[Batch], ctx: StepContext, by: str, renumber_groups: bool = True) -> Batch:
    """:meth:`Batch.concat` with an error that names the transform when the parts' extras differ."""
    parts = [b for b in batches if len(b)]
    if not parts:
        return batches[0]
    keys = [sorted(b.extras) for b in parts]
    if any(k != keys[0] for k in keys):
        raise RlobjInputError(f"{by}: cannot merge the step's rows with newly sampled ones: they carry different "
                              f"extras ({keys[0]} vs {[k for k in keys if k != keys[0]][0]}). Put {by} before "
                              "the transforms that attach extras.")
    return Batch.concat(parts, ctx.pad_token_id, renumber_groups=renumber_groups)


def draw(ctx: StepContext, records: list[dict], by: str, n: int | None = None, salt: int = 0,
         **changes) -> Batch:
    """Sample ``records`` again through ``ctx.sample`` and score the result with ``ctx.score``.

    Group ``j`` of the returned batch (in order of first appearance) answers ``records[j]``.
    """
    if not callable(getattr(ctx, "sample", None)) or not callable(getattr(ctx, "score", None)):
        raise RlobjInputError(f"{by}: needs StepContext.sample and StepContext.score to draw more rollouts")
    kwargs = dict(changes)
    if n is not None:
        kwargs["n"] = n
    drawn = ctx.sample(records, salt=salt, **kwargs)
    if not isinstance(drawn, Batch):
        raise RlobjInputError(f"{by}: StepContext.sample returned {type(drawn).__name__}, expected a Batch")
    groups = len(group_rows(drawn.rollout.group_ids))
    if groups != len(records):
        raise RlobjInputError(f"{by}: StepContext.sample was asked for {len(records)} prompts and returned "
                              f"{groups} groups; the sampler must return one group per record, in order")
    scored = drawn if drawn.scores is not None else ctx.score(drawn)
    if not isinstance(scored, Batch) or scored.scores is None:
        raise RlobjInputError(f"{by}: StepContext.score returned no scored Batch")
    return scored


def generator(ctx: StepContext, salt: int) -> torch.Generator:
    """A random stream of (run seed, step, rank, salt): the same on a resumed run."""
    seed = (int(ctx.seed) * 1_000_003 + int(ctx.step) * 10_007 + int(ctx.rank) * 101 + int(salt)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)
