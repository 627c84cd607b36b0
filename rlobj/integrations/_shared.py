"""Helpers shared by the TRL and verl adapters: turn what a host trainer holds into rlobj states."""

import torch
from torch import Tensor

from rlobj.algebra.objective import Objective
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.rows import cut_rows

__all__ = ["as_objective", "slots_read", "batch_state", "row_fields"]

#: Per-row fields of a prepared state that loss-stage terms may read besides the advantages.
CARRIED_FIELDS = ("rewards", "group_ids", "token_rewards")


def as_objective(objective, by: str) -> Objective:
    """An :class:`~rlobj.algebra.objective.Objective` from a term, a chain or an objective."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, Term):
        return Objective(objective)
    raise RlobjInputError(f"{by}: objective must be an rlobj term, chain or Objective, got "
                          f"{type(objective).__name__}")


def slots_read(objective: Objective, stage: str | None = None) -> frozenset[str]:
    """Slots (``"vocab"``, ``"extras:vocab_ref"``, ...) read by the chain's terms of ``stage``."""
    terms = [t for t in objective.chain.terms if stage is None or t.stage == stage]
    return frozenset().union(*(t.slots_read() for t in terms))


def group_ids_of(rows: int, group_size: int, device) -> Tensor:
    """Group ids of ``rows`` responses laid out prompt by prompt, ``group_size`` per prompt."""
    if group_size < 1 or rows % group_size:
        raise RlobjInputError(f"group_size: {rows} responses do not split into groups of {group_size}")
    return torch.arange(rows, device=device) // group_size


def batch_state(objective: Objective, *, mask: Tensor, rewards: Tensor | None = None,
                token_rewards: Tensor | None = None, group_ids: Tensor | None = None,
                extras: dict | None = None, dtype=torch.float64) -> State:
    """Run the batch-stage terms (rewards, advantages) on a host's whole batch.

    The batch stage reads no log-prob, so ``logp`` is zeros of ``dtype``; the advantages of the
    returned state are ``[batch, seq]``, zero on padding.
    """
    fields = {"logp": torch.zeros(mask.shape, dtype=dtype, device=mask.device), "mask": mask.bool()}
    if rewards is not None:
        fields["rewards"] = rewards.to(dtype)
    if token_rewards is not None:
        fields["token_rewards"] = token_rewards.to(dtype)
    if group_ids is not None:
        fields["group_ids"] = group_ids
    return objective.prepare(**fields, extras=dict(extras or {}))


def row_fields(state: State, rows: slice, seq: int) -> dict[str, Tensor]:
    """Per-row tensors of a prepared state (advantages, rewards, group ids, per-row extras) cut to
    ``rows`` and to the first ``seq`` token columns, keyed by field name (extras as ``extras:<name>``)."""
    batch = state.batch_size

    def cut(value: Tensor) -> Tensor:
        value = cut_rows(value, rows, batch)
        return value[:, :seq] if value.dim() >= 2 and value.shape[1] == state.mask.shape[1] else value

    out = {}
    for name in ("advantages",) + CARRIED_FIELDS:
        value = getattr(state, name)
        if isinstance(value, Tensor):
            out[name] = cut(value)
    for name, value in state.extras.items():
        if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == batch:
            out[f"extras:{name}"] = cut(value)
    return out
