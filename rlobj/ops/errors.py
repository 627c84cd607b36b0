"""The one error type rlobj raises for bad input, and the checks that raise it.

Every message names the field, what was expected and what was received, so a user can fix
the call without reading rlobj's source.
"""

import torch
from torch import Tensor

__all__ = [
    "RlobjInputError",
    "RlobjBuildError",
    "check_finite",
    "check_shape",
    "check_group_sizes",
    "check_nonempty_rows",
]


class RlobjInputError(ValueError):
    """Bad input to a term or an objective: wrong shape, NaN/inf, empty rows, tiny groups."""


class RlobjBuildError(ValueError):
    """A chain of terms whose order cannot work; raised when the chain is built."""


def check_shape(name: str, tensor: Tensor, shape: tuple[int, ...], dims: str) -> None:
    """Raise unless ``tensor.shape == shape``; ``dims`` names the axes ("batch seq")."""
    if tuple(tensor.shape) != tuple(shape):
        raise RlobjInputError(
            f"{name}: expected shape ({dims}) = {tuple(shape)}, got {tuple(tensor.shape)}"
        )


def check_finite(name: str, tensor: Tensor, where: Tensor | None = None) -> None:
    """Raise if ``tensor`` holds NaN or +-inf (only at positions where ``where`` is True)."""
    bad = ~torch.isfinite(tensor.detach())
    if where is not None:
        bad = bad & where
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        value = tensor.detach()[index].item()
        raise RlobjInputError(
            f"{name}: expected finite values, got {value} at index {index} "
            f"({int(bad.sum())} non-finite entries)"
        )


def check_nonempty_rows(name: str, mask: Tensor, needed_by: str) -> None:
    """Raise if a row of the boolean token mask has no True entry."""
    empty = ~mask.any(dim=-1)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise RlobjInputError(
            f"{name}: {needed_by} needs at least one valid token per sequence, "
            f"but rows {rows[:10]} of the mask are all False"
        )


def check_group_sizes(group_ids: Tensor, minimum: int, needed_by: str) -> None:
    """Raise if any group (prompt) has fewer than ``minimum`` members."""
    _, counts = torch.unique(group_ids, return_counts=True)
    if bool((counts < minimum).any()):
        small = torch.unique(group_ids)[counts < minimum].tolist()
        raise RlobjInputError(
            f"group_ids: {needed_by} needs at least {minimum} responses per group, "
            f"but groups {small[:10]} have {counts[counts < minimum].tolist()[:10]}"
        )
