"""Input checks shared by the batch filters (:mod:`rlobj.rollout.filters`, :mod:`rlobj.rollout.prof`)."""

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError, check_finite, check_shape


def _check_rows(name: str, values: Tensor, by: str, float_values: bool = True) -> None:
    """``values`` must be a 1-D tensor (float when ``float_values``, else integer)."""
    if not isinstance(values, Tensor) or values.dim() != 1:
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise RlobjInputError(f"{name}: {by} expected a 1-D tensor of shape (batch,), got {got}")
    if float_values and not values.is_floating_point():
        raise RlobjInputError(f"{name}: {by} expected a float tensor, got {values.dtype}")
    if not float_values and (values.is_floating_point() or values.dtype == torch.bool or values.is_complex()):
        raise RlobjInputError(f"{name}: {by} expected an integer tensor, got {values.dtype}")


def _check_groups(rewards: Tensor, group_ids: Tensor, by: str) -> None:
    _check_rows("rewards", rewards, by)
    _check_rows("group_ids", group_ids, by, float_values=False)
    check_shape("group_ids", group_ids, tuple(rewards.shape), "batch")
    check_finite("rewards", rewards)


def _groups_in_order(group_ids: Tensor) -> list[int]:
    """Group ids in order of first appearance."""
    return list(dict.fromkeys(group_ids.tolist()))


def _extremes(rows: list[int], key: list[float], count: int, largest: bool) -> list[int]:
    """The ``count`` rows with the smallest (or largest) key; ties go to the earlier row."""
    ordered = sorted(rows, key=lambda i: (-key[i] if largest else key[i], i))
    return ordered[:count]
