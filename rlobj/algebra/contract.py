r"""The declarative part of the term contract: hyperparameter types and ranges, checked at build.

A term's hyperparameters are typed dataclass fields. The types are checked when the term is
built, and a range can be attached to a number with :data:`typing.Annotated`:

>>> from typing import Annotated
>>> from rlobj.algebra import Range, State, Term
>>> class scale_rewards(Term, stage="batch", reads=("rewards",), writes=("rewards",)):
...     "Multiply the rewards by coef."
...     coef: Annotated[float, Range(gt=0)] = 1.0
...     def __call__(self, state: State) -> State:
...         return state.update(rewards=self.coef * state.require("rewards"))
>>> scale_rewards(-1)
Traceback (most recent call last):
    ...
rlobj.ops.errors.RlobjInputError: scale_rewards.coef: expected > 0, got -1
>>> scale_rewards("2")
Traceback (most recent call last):
    ...
rlobj.ops.errors.RlobjInputError: scale_rewards.coef: expected float, got str '2'

The common ranges have names: :data:`NonNegative` ($\ge 0$), :data:`Positive` ($> 0$),
:data:`Fraction` ($[0, 1]$) and :data:`OpenFraction` ($(0, 1]$), all floats.

What the type check accepts, field by field (values from Python, YAML or the Lightning CLI):
``float`` takes any real number but not a bool (an int is a float); ``int`` an integer, not a
bool; ``bool``, ``str`` and ``None`` exactly; ``Literal[...]`` one of its values; a union
(``X | None``) any arm; ``tuple[...]`` a tuple *or a list* (YAML has no tuples) whose items
match; a mapping type any mapping; ``Callable`` anything callable; any other class (a term,
a ``torch.dtype``) an instance of it. Annotations it cannot resolve or does not know
(``Any``, type variables, protocols) are not checked.
"""

import collections.abc
import dataclasses
import numbers
import types
import typing
from typing import Annotated, Any, Literal, Union

from rlobj.ops.errors import RlobjInputError

__all__ = ["Range", "NonNegative", "Positive", "Fraction", "OpenFraction", "check_fields"]


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class Range:
    """Bounds of a numeric hyperparameter: ``Annotated[float, Range(ge=0.0, le=1.0)]``.

    A value out of range is refused naming the bound it breaks, as ``check_range`` words it:
    ``clip_ratio.eps_low: expected >= 0.0, got -0.1`` (the bound is printed as written).

    Attributes:
        ge / gt: lower bound, inclusive / exclusive (at most one of them).
        le / lt: upper bound, inclusive / exclusive (at most one of them).

    ``None`` values of an ``Optional`` field are not checked (the type check handles them).
    Ranges compare by identity (``typing`` caches ``Annotated[float, Range(gt=0)]`` by equal
    arguments, which would print another range's ``0.0`` for this one's ``0``).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __post_init__(self):
        if self.ge is not None and self.gt is not None:
            raise TypeError("Range: give ge or gt, not both")
        if self.le is not None and self.lt is not None:
            raise TypeError("Range: give le or lt, not both")

    def __repr__(self) -> str:
        bounds = ", ".join(f"{k}={v!r}" for k, v in (("ge", self.ge), ("gt", self.gt), ("le", self.le),
                                                       ("lt", self.lt)) if v is not None)
        return f"Range({bounds})"

    def violated(self, value) -> str | None:
        """The bound ``value`` breaks (``">= 0.0"``; the lower one first), or None."""
        for op, bound, broken in ((">=", self.ge, lambda b: value < b), (">", self.gt, lambda b: value <= b),
                                  ("<=", self.le, lambda b: value > b), ("<", self.lt, lambda b: value >= b)):
            if bound is not None and broken(bound):
                return f"{op} {bound}"
        return None


#: A float >= 0.
NonNegative = Annotated[float, Range(ge=0.0)]
#: A float > 0.
Positive = Annotated[float, Range(gt=0.0)]
#: A float in [0, 1].
Fraction = Annotated[float, Range(ge=0.0, le=1.0)]
#: A float in (0, 1].
OpenFraction = Annotated[float, Range(gt=0.0, le=1.0)]


# ---------------------------------------------------------------------------------- the checks
def check_fields(obj) -> None:
    """Check every dataclass field of ``obj`` against its annotation (type, then range).

    Raises :class:`~rlobj.ops.errors.RlobjInputError` naming ``<class>.<field>``, what was
    expected and what came. Called once per term, when it is built (see :class:`Term`).
    """
    cls = type(obj)
    for name, hint in _field_hints(cls):
        value = getattr(obj, name)
        problem = _mismatch(hint, value)
        if problem is not None:
            raise RlobjInputError(f"{cls.__name__}.{name}: {problem}")


def _field_hints(cls) -> list[tuple[str, Any]]:
    """``(field, resolved annotation)`` for the init fields of ``cls``, cached on the class."""
    cached = cls.__dict__.get("_rlobj_field_hints")
    if cached is not None:
        return cached
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # an unresolvable string annotation: check the fields annotated with objects
        hints = {name: annotation for klass in reversed(cls.__mro__)
                 for name, annotation in getattr(klass, "__annotations__", {}).items()
                 if not isinstance(annotation, str)}
    fields = [(f.name, hints[f.name]) for f in dataclasses.fields(cls)
              if f.init and f.name in hints and f._field_type is dataclasses._FIELD]
    type.__setattr__(cls, "_rlobj_field_hints", fields)
    return fields


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is Annotated:
        return _type_name(typing.get_args(hint)[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        args = typing.get_args(hint)
        if origin in (tuple, list, dict) and args:
            return f"{name}[{', '.join('...' if a is Ellipsis else _type_name(a) for a in args)}]"
        return name
    return getattr(hint, "__name__", str(hint))


def _mismatch(hint, value) -> str | None:
    """None when ``value`` fits ``hint``, else what was expected and what came."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        problem = _mismatch(base, value)
        if problem is not None:
            return problem
        for bound in extras:
            broken = bound.violated(value) if isinstance(bound, Range) and value is not None else None
            if broken is not None:
                return f"expected {broken}, got {_show(value)}"
        return None
    if _fits(hint, value):
        return None
    return f"expected {_type_name(hint)}, got {type(value).__name__} {_show(value)}"


def _fits(hint, value) -> bool:
    if hint is Any or hint is object or isinstance(hint, (typing.TypeVar, str, typing.ForwardRef)):
        return True
    if hint is type(None) or hint is None:
        return value is None
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return _mismatch(hint, value) is None
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (Union, types.UnionType):
        return any(_fits(a, value) for a in args)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return not args or all(_fits(args[0], v) for v in value)
        return len(args) == len(value) and all(_fits(a, v) for a, v in zip(args, value))
    if origin in (list, collections.abc.Sequence):
        return isinstance(value, (list, tuple)) and (not args or all(_fits(args[0], v) for v in value))
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, collections.abc.Mapping)
    if origin is collections.abc.Callable or hint is collections.abc.Callable or hint is typing.Callable:
        return callable(value)
    if origin is type:
        return isinstance(value, type)
    if isinstance(hint, type):
        if getattr(hint, "_is_protocol", False):
            return True
        return isinstance(value, hint)
    return True  # an annotation this check does not know: not checked
