r"""The update stage: epochs x mini-batches x micro-batches on a prepared rollout batch.

:func:`run_update` is a plain function. Given the objective, the batch state after the batch
stage (``Objective.prepare``), a :class:`UpdatePlan` and callables for the forward with
gradient, the per-micro-batch inputs, backward and the optimizer step, it runs

    for each of ``ppo_epochs`` epochs, for each mini-batch (optimizer step):
        statistics of the whole mini-batch for terms that select over it (no grad, gathered
        across data-parallel ranks)  -- ``Objective.minibatch_stats``
        one global :class:`~rlobj.algebra.Normalizer` over the mini-batch's micro-batches and ranks
        for each micro-batch: forward with gradient, ``Objective.loss``, backward
        optimizer step

so that the sum of the micro-batch gradients is the gradient of the mini-batch's loss: the
micro-batch size changes nothing (DESIGN.md section 3, law 7), and neither does the number of
ranks.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rlobj.algebra import Normalizer, Objective
from rlobj.algebra.objective import ROW_FIELDS, take_rows
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.kl import k3_estimate
from rlobj.train.distributed import gather_rows, local_rows, world

__all__ = ["UpdatePlan", "UpdateResult", "run_update"]

@dataclass(frozen=True)
class UpdatePlan:
    """How one rollout batch is cut into optimizer steps and forward passes.

    Attributes:
        ppo_epochs: passes over the batch.
        mini_batch_size: sequences per optimizer step on each rank (None: the whole batch).
        micro_batch_size: sequences per forward/backward (None: the whole mini-batch).
        shuffle: permute rows (seeded) before cutting mini-batches each epoch.
        seed: seed of that permutation (combined with the update index and epoch).
    """

    ppo_epochs: int = 1
    mini_batch_size: int | None = None
    micro_batch_size: int | None = None
    shuffle: bool = False
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.ppo_epochs, bool) or not isinstance(self.ppo_epochs, int) or self.ppo_epochs < 1:
            raise RlobjInputError(f"ppo_epochs: expected an int >= 1, got {self.ppo_epochs!r}")
        for name in ("mini_batch_size", "micro_batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise RlobjInputError(f"{name}: expected an int >= 1 or null, got {value!r}")

    def mini_batches(self, batch: int, epoch: int, first_update: int) -> list[Tensor]:
        """Row indices of each mini-batch of one epoch."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 7919 + first_update * 31 + epoch)
            order = torch.randperm(batch, generator=generator)
        else:
            order = torch.arange(batch)
        mini = self.mini_batch_size or batch
        return [order[i:i + mini] for i in range(0, batch, mini)]

    def micro_batches(self, rows: Tensor) -> list[Tensor]:
        micro = self.micro_batch_size or len(rows)
        return [rows[i:i + micro] for i in range(0, len(rows), micro)]

    def reuses_rollout_logprobs(self, batch: int) -> bool:
        """One epoch, one mini-batch: the weights do not change before the only forward."""
        return self.ppo_epochs == 1 and (self.mini_batch_size or batch) >= batch


@dataclass
class UpdateResult:
    metrics: dict[str, float]
    term_state: dict
    updates: int
    logp_new: Tensor | None = None


def _minibatch_stats(objective: Objective, state: State, forward_no_grad) -> dict[str, Any]:
    """``Objective.minibatch_stats`` on the whole (global) mini-batch with current detached inputs."""
    reads = objective.minibatch_stats_reads
    logp, entropy, view = forward_no_grad("vocab" in reads)
    changes = dict(logp=logp, entropy=entropy, cache={})
    if view is not None:
        changes["vocab"] = view
    state = state.update(**changes)
    fields = {name: getattr(state, name) for name in ROW_FIELDS}
    fields["extras"] = {k: v for k, v in state.extras.items() if isinstance(v, Tensor)}
    if view is not None and world()[1] > 1:
        # a vocab view cannot be gathered: hooks additive over rows run on this rank's rows and
        # their 0-dim statistics (sums over rows) are added across ranks
        if not objective.minibatch_stats_additive:
            raise RlobjInputError("mini-batch statistics that read the vocabulary and are not additive over rows "
                                  "(Term.minibatch_stats_additive) cannot be taken across data-parallel ranks")
        stats = objective.minibatch_stats(state)
        for value in stats.values():
            if value.dim() == 0:
                torch.distributed.all_reduce(value)
        return stats
    gathered, where = gather_rows(fields)
    if where[2] is not None:
        state = State(**{k: v for k, v in gathered.items() if k != "extras"}, extras=gathered["extras"],
                      term_state=state.term_state, normalizer=state.normalizer)
    stats = objective.minibatch_stats(state)
    return {k: local_rows(v, where, "extras", k) for k, v in stats.items()}


def run_update(objective: Objective, prepared: State, plan: UpdatePlan, *,
               forward: Callable[[Tensor, bool], tuple[Tensor, Tensor, Any]],
               micro_inputs: Callable[[Tensor], dict[str, Any]],
               backward: Callable[[Tensor], None],
               step: Callable[[], float],
               term_state: dict,
               first_update: int = 0,
               entropy_grad: bool = False,
               with_vocab: bool = False) -> UpdateResult:
    """Run the optimizer steps of one rollout batch (see the module docstring).

    Args:
        objective: the objective; its batch stage already ran (``prepared``).
        prepared: the batch state after ``Objective.prepare``.
        plan: epochs, mini- and micro-batch sizes.
        forward: ``forward(rows, with_vocab) -> (logp, entropy, view)`` of the current policy on
            ``rows`` in the caller's grad mode (``view`` None unless ``with_vocab``).
        micro_inputs: ``micro_inputs(rows) -> {slot: value}`` per-micro-batch inputs of the
            providers (``extras:vocab_ref``, values with gradient, ...); they replace the batch
            value of the same slot for that micro-batch.
        backward: back-propagates one micro-batch loss.
        step: clips, steps the optimizer, zeroes gradients; returns the gradient norm.
        term_state: states of stateful terms before the update.
        first_update: index of the first optimizer step (shuffling seed).
        entropy_grad: the objective reads ``entropy`` in its loss stage (keep its gradient).
        with_vocab: the objective reads ``vocab`` in its loss stage.

    Returns:
        :class:`UpdateResult`: the mean of each objective metric over micro-batches, ``kl/old_k3``,
        ``entropy``, gradient norms, the new term state and the number of optimizer steps.
    """
    batch = prepared.batch_size
    reuse = plan.reuses_rollout_logprobs(batch)
    needs_stats = getattr(objective, "needs_minibatch_stats", False)
    sums: dict[str, float] = defaultdict(float)
    count, updates, norms = 0, 0, []
    logp_new = torch.zeros_like(prepared.mask, dtype=torch.float32) if reuse else None
    for epoch in range(plan.ppo_epochs):
        for mini_rows in plan.mini_batches(batch, epoch, first_update + updates):
            mini_rows = mini_rows.to(prepared.mask.device)
            mini_state = take_rows(prepared, mini_rows).update(term_state=dict(term_state))
            if needs_stats:
                def forward_no_grad(vocab, rows=mini_rows):
                    with torch.no_grad():
                        if vocab:  # one view over the whole mini-batch (no activations kept)
                            return forward(rows, True)
                        pieces = [forward(part, False) for part in plan.micro_batches(rows)]
                    return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces]), None
                stats = _minibatch_stats(objective, mini_state, forward_no_grad)
                mini_state = mini_state.update(extras={**mini_state.extras, **stats})
            local = torch.arange(len(mini_rows), device=mini_rows.device)
            micro_local = plan.micro_batches(local)
            states = [take_rows(mini_state, rows) for rows in micro_local]
            normalizer = Normalizer.from_masks([s.mask for s in states])
            new_term_state = term_state
            for rows_in_mini, state in zip(micro_local, states):
                rows = mini_rows[rows_in_mini]
                logp, entropy, view = forward(rows, with_vocab)
                if not entropy_grad:
                    entropy = entropy.detach()
                changes: dict[str, Any] = dict(logp=logp, entropy=entropy, cache={})
                if view is not None:
                    changes["vocab"] = view
                extra = micro_inputs(rows)  # per-micro-batch values (views, values with grad) win
                if extra:
                    changes["extras"] = {**state.extras, **{k.removeprefix("extras:"): v for k, v in extra.items()}}
                if reuse:
                    changes["logp_old"] = logp.detach()
                    logp_new[rows] = logp.detach().float()
                state = state.update(**changes)
                out = objective.loss(state, normalizer=normalizer, term_state=term_state)
                backward(out.loss)
                new_term_state = out.term_state
                for key, value in out.metrics.items():
                    sums[key] += float(value)
                valid = state.mask
                n_valid = max(float(valid.sum()), 1.0)
                log_ratio = (logp.detach() - state.logp_old)[valid]
                sums["kl/old_k3"] += float(k3_estimate(-log_ratio).sum() / n_valid)
                if "entropy" not in out.metrics:  # a term (entropy_bonus, ...) already reported it
                    sums["entropy"] += float(entropy.detach()[valid].sum() / n_valid)
                count += 1
            norms.append(step())
            term_state = dict(new_term_state)
            updates += 1
    metrics = {key: value / max(count, 1) for key, value in sums.items()}
    metrics["grad_norm"] = float(sum(norms) / len(norms)) if norms else float("nan")
    return UpdateResult(metrics=metrics, term_state=term_state, updates=updates, logp_new=logp_new)
