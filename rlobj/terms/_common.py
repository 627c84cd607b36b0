"""Helpers shared by the term families (not public)."""

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError, check_finite, check_group_sizes, check_shape
from rlobj.ops.reductions import broadcast_to_tokens, masked_sum

__all__ = ["sequence_rewards", "with_advantages", "require_groups", "check_range", "require_extra",
           "require_binary"]


def require_binary(rewards: Tensor, need: str, after: str = "") -> Tensor:
    """``rewards`` if every value is 0 or 1; else an error ``"rewards: <need>, got <first values>
    (<n> non-binary values)<after>"``."""
    binary = (rewards == 0) | (rewards == 1)
    if not bool(binary.all()):
        bad = rewards[~binary]
        raise RlobjInputError(
            f"rewards: {need}, got {bad[:5].tolist()} ({int(bad.numel())} non-binary values){after}")
    return rewards


def sequence_rewards(state: State, by: str | None = None) -> Tensor:
    r"""$r_i$ = outcome reward + the sum of token-level rewards (whichever are present)."""
    by = state.reader(by)
    if state.rewards is None and state.token_rewards is None:
        raise RlobjInputError(
            f"{by} reads 'rewards', but the state has neither rewards nor token_rewards. "
            "Pass rewards= (one scalar per sequence)."
        )
    total = state.rewards if state.rewards is not None else 0.0
    if state.token_rewards is not None:
        total = total + masked_sum(state.token_rewards, state.mask, dim=-1)
    return total


def require_groups(state: State, by: str | None = None, minimum: int = 1) -> Tensor:
    """``group_ids``, with every group of at least ``minimum`` responses (``by``: the running term)."""
    by = state.reader(by)
    group_ids = state.require("group_ids", by)
    if minimum > 1:
        check_group_sizes(group_ids, minimum, by)
    return group_ids


def with_advantages(state: State, per_sequence: Tensor | None = None, per_token: Tensor | None = None) -> State:
    """Store advantages (per sequence, broadcast to valid tokens; or per token) and their stats."""
    advantages = per_token if per_token is not None else broadcast_to_tokens(per_sequence, state.mask)
    valid = advantages[state.mask]
    stats = {"adv/mean": valid.mean(), "adv/std": valid.std() if valid.numel() > 1 else valid.sum() * 0,
             "adv/max": valid.max(), "adv/min": valid.min()} if valid.numel() else {}
    return state.update(advantages=advantages.detach()).add_metrics(**stats)


def check_range(term: str, name: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> None:
    """Raise a build-time error when a hyperparameter is out of its valid range.

    For bounds that are constants, prefer an annotation on the field
    (``eps: Annotated[float, Range(ge=0)]``, :mod:`rlobj.algebra.contract`): checked with the
    field's type, no ``__post_init__`` needed. This stays for bounds that depend on another
    field (``delta >= 1 + eps_high``)."""
    if low is not None and (value < low or (low_open and value == low)):
        raise RlobjInputError(f"{term}.{name}: expected {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise RlobjInputError(f"{term}.{name}: expected <= {high}, got {value}")


def require_extra(state: State, key: str, by: str | None, shape: tuple[int, ...], dims: str, kind: str) -> Tensor:
    """``extras[key]`` checked for type, shape and kind (``"float"``, ``"bool"`` or ``"int"``);
    ``by=None`` names the running term."""
    by = state.reader(by)
    value = state.require(f"extras:{key}", by)
    if not isinstance(value, Tensor):
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a {kind} tensor of shape ({dims}), got {type(value).__name__}")
    check_shape(f"extras[{key!r}]", value, shape, dims)
    if kind == "bool" and value.dtype != torch.bool:
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a bool tensor, got {value.dtype}")
    if kind == "int" and (value.is_floating_point() or value.dtype == torch.bool or value.is_complex()):
        raise RlobjInputError(f"extras[{key!r}]: {by} expected an integer tensor, got {value.dtype}")
    if kind == "float" and not value.is_floating_point():
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a float tensor, got {value.dtype}")
    return value


def _rewards(state: State, by: str) -> Tensor:
    return state.require("rewards", by)


def _token_extra(state: State, key: str, by: str, kind: str = "float") -> Tensor:
    """``extras[key]`` of shape ``"batch seq"`` (float: finite at valid tokens, zero at padding)."""
    value = state.require(f"extras:{key}", by)
    if not isinstance(value, Tensor):
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a {kind} tensor of shape (batch seq), got {type(value).__name__}")
    check_shape(f"extras[{key!r}]", value, tuple(state.mask.shape), "batch seq")
    if kind == "bool":
        if value.dtype != torch.bool:
            raise RlobjInputError(f"extras[{key!r}]: {by} expected a bool tensor, got {value.dtype}")
        return value & state.mask
    if not value.is_floating_point():
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a float tensor, got {value.dtype}")
    check_finite(f"extras[{key!r}]", value, where=state.mask)
    return torch.where(state.mask, value.detach(), torch.zeros((), dtype=value.dtype))
