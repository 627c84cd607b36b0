"""Argument and batch checks of the batch transforms: one clear error naming the transform and
the argument (an int, a finite number in a range, one of some choices; a scored batch)."""

from __future__ import annotations

import math

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch

__all__ = ["check_choice", "check_float", "check_int", "check_scored"]


def check_scored(batch: Batch, by: str) -> None:
    if not isinstance(batch, Batch):
        raise RlobjInputError(f"{by}: expected a rlobj.train.stages.Batch, got {type(batch).__name__}")
    if batch.scores is None:
        raise RlobjInputError(f"{by}: the batch has not been scored; batch transforms run after the scorer")


def check_int(by: str, name: str, value, low: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise RlobjInputError(f"{by}.{name}: expected an int{bound}, got {value!r}")


def check_float(by: str, name: str, value, low: float | None = None, high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (low is not None and value < low) or (high is not None and value > high):
        raise RlobjInputError(f"{by}.{name}: expected a number in [{low}, {high}], got {value!r}")


def check_choice(by: str, name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise RlobjInputError(f"{by}.{name}: expected one of {list(choices)}, got {value!r}")
