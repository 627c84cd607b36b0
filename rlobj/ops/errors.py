"""The one error type rlobj raises for bad input, and the checks that raise it.

Every message names the field, what was expected and what was received, so a user can fix
the call without reading rlobj's source.
"""

import difflib
import importlib
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "RlobjInputError",
    "RlobjBuildError",
    "check_finite",
    "check_shape",
    "check_group_sizes",
    "check_nonempty_rows",
    "did_you_mean",
    "import_dotted",
    "import_subclass",
]


class RlobjInputError(ValueError):
    """Bad input to a term or an objective: wrong shape, NaN/inf, empty rows, tiny groups."""


class RlobjBuildError(ValueError):
    """A chain of terms whose order cannot work; raised when the chain is built."""


def did_you_mean(name: str, known) -> str:
    """`` Did you mean 'a', 'b'?`` with the (up to three) names of ``known`` closest to ``name``,
    or ``""`` when none is close: the hint of an "unknown name" error."""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def import_dotted(path: str, where: str) -> Any:
    """The object at the dotted ``path`` (``package.module.Name``): the library's one resolver of
    user code named in a config. An :class:`RlobjInputError` naming ``where`` and the import error
    when the path has no module part or does not import.

    Example:
        >>> import_dotted("math.pi", "my.key") > 3
        True
        >>> import_dotted("math.nope", "my.key")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rlobj.ops.errors.RlobjInputError: my.key: cannot import 'math.nope' (AttributeError: ...)
    """
    module, _, name = str(path).rpartition(".")
    if not module or not name:
        raise RlobjInputError(f"{where}: {path!r} is not a dotted import path (package.module.Name)")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise RlobjInputError(f"{where}: cannot import {path!r} ({type(error).__name__}: {error})") from error


def import_subclass(path: str, base: type, what: str, base_name: str) -> type:
    """The class at the dotted ``path``, checked to subclass ``base`` (public as ``base_name``);
    an :class:`RlobjInputError` naming ``what`` when it cannot be imported or is no such class."""
    cls = import_dotted(path, what)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise RlobjInputError(f"{what}: {path!r} is not a {base_name} subclass")
    return cls


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
