"""Running a chain: validate the batch, apply the terms, aggregate, return loss + metrics.

``Objective(term)`` splits the chain into its two stages:

* :meth:`Objective.prepare` runs the batch-stage terms (reward shaping, advantages) once on
  the whole rollout batch, where every group is complete;
* :meth:`Objective.loss` runs the per-token terms on one micro-batch and aggregates with the
  global :class:`~rlobj.algebra.state.Normalizer`, so micro-batches and ranks add up to the
  loss of the whole batch.

Calling the objective does both. Between them, once per optimizer mini-batch, the trainer
calls :meth:`Objective.minibatch_stats` on the whole mini-batch and merges the result into
``extras`` before it cuts micro-batches: terms whose loss depends on batch-wide choices
(top-fraction selections, covariances, means inside a nonlinear function, group baselines)
read them back, so the micro-batch law holds for every term.

Stateful terms read their state from ``term_state`` and the
output carries the new one: nothing is mutated.
"""

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from rlobj.algebra.aggregation import aggregate
from rlobj.algebra.state import Normalizer, State, stats_key
from rlobj.algebra.term import Chain, Term, as_terms, register_objective, term_keys, term_name
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.rows import cut_rows

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

    # ------------------------------------------------------------------ mini-batch statistics
    def _stats_terms(self) -> list[tuple[str, Term]]:
        return [(key, term) for key, term in zip(term_keys(self.chain.terms), self.chain.terms)
                if term.stage == "loss" and term.has_minibatch_stats()]

    @property
    def needs_minibatch_stats(self) -> bool:
        """Whether a loss-stage term of the chain has a :meth:`Term.minibatch_stats` hook."""
        return bool(self._stats_terms())

    @property
    def minibatch_stats_additive(self) -> bool:
        """Whether every hook is additive over rows (:attr:`Term.minibatch_stats_additive`)."""
        return all(term.minibatch_stats_additive for _, term in self._stats_terms())

    @property
    def minibatch_stats_reads(self) -> frozenset[str]:
        """Union of the slots the hooks read (``entropy``, ``vocab``, ``logp``, ...)."""
        return frozenset().union(*(term.minibatch_stats_reads() for _, term in self._stats_terms()))

    def minibatch_stats(self, state: State, term_state: dict | None = None) -> dict[str, Tensor]:
        """Run every loss-stage term's :meth:`Term.minibatch_stats` hook on one whole mini-batch.

        ``state`` is the prepared state of the mini-batch (gathered across data-parallel ranks
        when distributed) with the current policy's detached ``logp`` (and ``entropy`` /
        a no-grad ``vocab`` view when :attr:`minibatch_stats_reads` names them);
        ``term_state`` the stored term states (as passed to :meth:`loss`). Each hook runs
        under the key the chain gives its term (its name, ``"<name>#2"`` for a second term of the
        same class: :func:`~rlobj.algebra.term.term_keys`).

        Returns ``{f"stats:{key}:{name}": tensor}`` (detached), to merge into the state's
        ``extras`` before :meth:`split`: ``[batch]`` / ``[batch, seq]`` tensors are cut per
        micro-batch, 0-dim ones are shared. Call it once per mini-batch (again after every
        optimizer step: the statistics follow the current policy).
        """
        if term_state is not None:
            state = state.update(term_state=dict(term_state))
        batch, seq = state.mask.shape
        out: dict[str, Tensor] = {}
        for key, term in self._stats_terms():
            for name, value in term.minibatch_stats(state.update(key=key, running=term_name(term))).items():
                if not isinstance(value, Tensor) or tuple(value.shape) not in ((), (batch,), (batch, seq)):
                    got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                    raise RlobjInputError(
                        f"{term_name(term)}.minibatch_stats: statistic {name!r} must be a tensor of shape "
                        f"(), ({batch},) or ({batch}, {seq}) (batch, batch seq), got {got}")
                out[stats_key(key, name)] = value.detach()
        return out

    def split(self, state: State, sizes: list[int]) -> list[State]:
        """Split a prepared state into micro-batches of the given numbers of sequences."""
        pieces, start = [], 0
        for size in sizes:
            pieces.append(take_rows(state, slice(start, start + size)))
            start += size
        return pieces


register_objective(Objective)  # Term.loss runs it (term.py cannot import this module back)


#: Per-row fields of a state (cut alike when a state is split into micro-batches).
ROW_FIELDS = ("logp", "mask", "logp_old", "logp_ref", "rewards", "group_ids", "token_rewards",
              "advantages", "entropy")


def take_rows(state: State, rows: slice | Tensor) -> State:
    """Rows ``rows`` (a slice, or row indices in any order) of a state: every per-row field,
    every per-row extra and a vocab view that can be cut, alike."""
    if isinstance(rows, Tensor):
        rows = rows.long().to(state.mask.device)

    def cut(value):  # tensors only: the one row slicer, rlobj.ops.rows.cut_rows
        return cut_rows(value, rows, state.batch_size) if isinstance(value, Tensor) else value

    changes = {name: cut(getattr(state, name)) for name in ROW_FIELDS}
    changes["extras"] = {k: cut(v) for k, v in state.extras.items()}
    if state.vocab is not None and hasattr(state.vocab, "rows"):
        changes["vocab"] = state.vocab.rows(rows)
    return state.update(**changes, cache={})
