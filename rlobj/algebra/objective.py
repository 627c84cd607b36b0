"""Running a chain: validate the batch, apply the terms, aggregate, return loss + metrics.

``Objective(term)`` splits the chain into its two stages:

* :meth:`Objective.prepare` runs the batch-stage terms (reward shaping, advantages) once on
  the whole rollout batch, where every group is complete;
* :meth:`Objective.loss` runs the per-token terms on one micro-batch and aggregates with the
  global :class:`~rlobj.algebra.state.Normalizer`, so micro-batches and ranks add up to the
  loss of the whole batch.

Calling the objective does both. Stateful terms read their state from ``term_state`` and the
output carries the new one: nothing is mutated.
"""

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from rlobj.algebra.aggregation import aggregate
from rlobj.algebra.state import Normalizer, State
from rlobj.algebra.term import Chain, Term, as_terms

__all__ = ["Objective", "Output"]


@dataclass(frozen=True, eq=False)
class Output:
    """What an objective returns.

    Attributes:
        loss: the scalar to call ``backward()`` on.
        metrics: named detached scalars: ``loss`` and ``loss/<part>`` for every loss part,
            plus everything the terms reported (clip fraction, KL, entropy, advantage stats).
        term_state: the new states of stateful terms; pass it back on the next call.
        state: the final state (per-token parts, advantages), for inspection.
    """

    loss: Tensor
    metrics: dict[str, Tensor]
    term_state: dict[str, Any]
    state: State


class Objective:
    """A chain of terms, ready to run on rollout batches.

    Args:
        term: a term or chain, e.g. ``grpo >> k3_kl(beta=0.04)``.

    Example:
        >>> import torch
        >>> from rlobj import grpo
        >>> out = Objective(grpo)(logp=torch.log(torch.full((4, 3), 0.5)),
        ...     logp_old=torch.log(torch.full((4, 3), 0.5)), mask=torch.ones(4, 3, dtype=torch.bool),
        ...     rewards=torch.tensor([1.0, 0.0, 1.0, 1.0]), group_ids=torch.tensor([0, 0, 1, 1]))
        >>> round(float(out.loss), 6)
        0.0
    """

    def __init__(self, term: Term):
        self.chain = Chain(as_terms(term))

    def __repr__(self) -> str:
        return f"Objective({self.chain!r})"

    @staticmethod
    def _state(state: State | None, fields: dict) -> State:
        if state is None:
            return State.from_batch(**fields)
        if fields:
            return state.update(**fields)
        return state

    def prepare(self, state: State | None = None, **fields) -> State:
        """Validate the batch and run the batch-stage terms (rewards, advantages) on it."""
        return self.chain(self._state(state, fields), stage="batch")

    def loss(
        self,
        state: State,
        normalizer: Normalizer | None = None,
        term_state: dict | None = None,
    ) -> Output:
        """Run the per-token terms on a prepared (micro-)batch and aggregate."""
        state = state.update(
            normalizer=normalizer,
            term_state=dict(term_state) if term_state is not None else dict(state.term_state),
        )
        state = self.chain(state, stage="loss")
        loss, per_part = aggregate(state)
        metrics = {"loss": loss.detach()}
        metrics.update({f"loss/{name}": value.detach() for name, value in per_part.items()})
        metrics.update(state.metrics)
        return Output(loss=loss, metrics=metrics, term_state=dict(state.term_state), state=state)

    def __call__(
        self,
        state: State | None = None,
        *,
        normalizer: Normalizer | None = None,
        term_state: dict | None = None,
        **fields,
    ) -> Output:
        """Prepare and compute the loss of one batch: ``objective(logp=..., mask=..., ...)``."""
        state = self._state(state, fields)
        if term_state is not None:
            state = state.update(term_state=dict(term_state))
        prepared = self.prepare(state)
        return self.loss(prepared, normalizer=normalizer)

    def split(self, state: State, sizes: list[int]) -> list[State]:
        """Split a prepared state into micro-batches of the given numbers of sequences."""
        pieces, start = [], 0
        for size in sizes:
            pieces.append(_slice_state(state, slice(start, start + size)))
            start += size
        return pieces


def _slice_state(state: State, rows: slice) -> State:
    def cut(value):
        if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == state.batch_size:
            return value[rows]
        return value

    changes = {}
    for name in ("logp", "mask", "logp_old", "logp_ref", "rewards", "group_ids", "token_rewards",
                 "advantages", "entropy"):
        changes[name] = cut(getattr(state, name))
    changes["extras"] = {k: cut(v) for k, v in state.extras.items()}
    if state.vocab is not None and hasattr(state.vocab, "rows"):
        changes["vocab"] = state.vocab.rows(rows)
    return state.update(**changes, cache={})
