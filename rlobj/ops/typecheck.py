"""One switch for runtime type and shape checks (jaxtyping annotations checked by beartype).

Checks are on when the environment variable ``RLOBJ_TYPECHECK`` is ``1`` (the test suite sets
it) and off otherwise; they are always skipped inside ``torch.compile`` regions.
"""

import functools
import os
from collections.abc import Callable
from typing import TypeVar

import torch
from beartype import beartype
from jaxtyping import jaxtyped

__all__ = ["typechecked", "typechecks_enabled"]

F = TypeVar("F", bound=Callable)


def typechecks_enabled() -> bool:
    """Whether ``RLOBJ_TYPECHECK=1`` is set (read at call time, so tests can toggle it)."""
    return os.environ.get("RLOBJ_TYPECHECK", "0") == "1"


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def typechecked(fn: F) -> F:
    """Check ``fn``'s jaxtyping annotations with beartype when checks are enabled."""
    checked = jaxtyped(typechecker=beartype)(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if typechecks_enabled() and not _compiling():
            return checked(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
