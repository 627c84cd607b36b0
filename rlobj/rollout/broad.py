r"""BroRL: hundreds of rollouts per prompt, with the objective run over memory-bounded micro-batches.

Hu et al. (NVIDIA), "BroRL: Scaling Reinforcement Learning via Broadened Exploration",
arXiv 2510.01180. BroRL raises the number of rollouts per prompt $N$ from the usual 8-16 to
hundreds (the paper scales $N = 16 \to 512$) and keeps the GRPO-style objective unchanged: its
mass-balance analysis shows that with large $N$ the unsampled-token terms vanish and the
correct-token mass grows. What changes is engineering: $N \gg G$ rollouts do not fit one engine
call or one backward pass. This module gives the two pieces:

* :func:`generate_broad` samples $N$ rollouts per prompt in engine-sized calls of at most
  ``chunk_size`` sequences and returns one :class:`~rlobj.rollout.engine.RolloutBatch` whose
  groups are complete and contiguous (group id = prompt index);
* :func:`broad_backward` runs an rlobj :class:`~rlobj.algebra.objective.Objective` over that batch:
  ``Objective.prepare`` once on the whole batch (group statistics over all $N$ samples),
  ``Objective.split`` into micro-batches of ``micro_batch_size`` sequences,
  ``Normalizer.from_masks`` over all of them (global token / sequence counts), then for each
  micro-batch a forward pass with gradient, ``Objective.loss`` and ``backward``. The gradients
  accumulated in the model equal those of the whole-batch loss (law 7 of the design), while peak
  activation memory is that of one micro-batch.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from rlobj.algebra.objective import Objective
from rlobj.algebra.state import Normalizer
from rlobj.rollout._batching import concat_rollouts, take
from rlobj.rollout.engine import RolloutBatch, SamplingConfig, validate_generate_args
from rlobj.rollout.logprobs import sequence_logprobs

__all__ = ["generate_broad", "broad_backward", "BroadResult"]


def _check_positive(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}")


def generate_broad(engine, prompts: Sequence[Sequence[int] | Tensor], n: int,
                   sampling: SamplingConfig, chunk_size: int) -> RolloutBatch:
    r"""Sample ``n`` rollouts per prompt (BroRL: $N$ in the hundreds) in calls of <= ``chunk_size``.

    Each engine call samples ``k = max(1, chunk_size // len(prompts))`` responses for each of at
    most ``chunk_size`` prompts; calls are seeded ``seed + 1_000_003 * call`` (distinct streams,
    reproducible) when ``sampling.seed`` is set. Rows are then reordered so that response ``b``
    answers prompt ``b // n`` (contiguous groups, group id = prompt index), as from one call.

    Args:
        engine: any :class:`~rlobj.rollout.engine.Engine` with a ``pad_token_id`` attribute.
        prompts: token id sequences.
        n: rollouts per prompt $N \ge 1$ (BroRL: 512).
        sampling: the sampling settings of every call.
        chunk_size: largest number of sequences per engine call (the engine's memory bound).

    Returns:
        A batch of ``len(prompts) * n`` rows.
    """
    validate_generate_args(prompts, n, sampling)
    _check_positive("generate_broad", "chunk_size", chunk_size)
    prompts = list(prompts)
    prompt_chunk = min(len(prompts), chunk_size)
    per_call = max(1, chunk_size // prompt_chunk)
    batches, offsets, call = [], [], 0
    for p0 in range(0, len(prompts), prompt_chunk):
        chunk_prompts = prompts[p0:p0 + prompt_chunk]
        done = 0
        while done < n:
            k = min(per_call, n - done)
            seed = None if sampling.seed is None else sampling.seed + 1_000_003 * call
            batches.append(engine.generate(chunk_prompts, n=k, sampling=replace(sampling, seed=seed)))
            offsets.append(p0)
            done += k
            call += 1
    merged = concat_rollouts(batches, engine.pad_token_id, offsets)
    order = torch.sort(merged.group_ids.cpu(), stable=True).indices
    return take(merged, order)


@dataclass(frozen=True, eq=False)
class BroadResult:
    """What :func:`broad_backward` returns.

    Attributes:
        loss: the whole-batch loss (sum of the micro-batch losses, detached).
        metrics: every objective metric, averaged over micro-batches, plus ``loss``.
        term_state: the stateful terms' new state (from the last micro-batch).
        micro_batches: number of backward passes.
    """

    loss: Tensor
    metrics: dict[str, float]
    term_state: dict[str, Any]
    micro_batches: int


def broad_backward(objective: Objective | Any, model, rollout: RolloutBatch, rewards: Tensor,
                   micro_batch_size: int, temperature: float = 1.0, logp_old: Tensor | None = None,
                   logp_ref: Tensor | None = None, extras: dict | None = None,
                   term_state: dict | None = None,
                   forward: Callable[[RolloutBatch], Tensor] | None = None) -> BroadResult:
    r"""Accumulate the gradient of ``objective`` on a large rollout batch, one micro-batch at a time.

    Steps: ``logp_old`` (no gradient, in micro-batches, unless given) →
    ``prepared = objective.prepare(...)`` on the whole batch →
    ``objective.split(prepared, sizes)`` → ``normalizer = Normalizer.from_masks(masks)`` →
    for each micro-batch: ``logp`` with gradient, ``objective.loss(micro, normalizer)``,
    ``loss.backward()``. Because every aggregation divides by the global counts, the sum of
    the micro-batch gradients equals the gradient of the whole-batch loss. The caller runs
    ``optimizer.step()`` afterwards.

    Args:
        objective: an :class:`~rlobj.algebra.objective.Objective` or a term/chain (e.g. ``grpo``).
        model: the policy (a ``transformers`` causal LM) whose parameters get ``.grad``.
        rollout: the batch, e.g. from :func:`generate_broad`.
        rewards: ``[batch]`` scalar rewards.
        micro_batch_size: sequences per forward/backward pass (the memory bound).
        temperature: the sampling temperature the log-probs are computed at. Default 1.0.
        logp_old: ``[batch, seq]`` old log-probs; default: the model's, recomputed without grad.
        logp_ref: optional reference log-probs for KL terms.
        extras: further named tensors; ``extras['logp_rollout']`` is set from the rollout.
        term_state: state of stateful terms from the previous step.
        forward: ``forward(micro_rollout) -> logp`` replacing :func:`sequence_logprobs` (e.g. a
            trainer's own forward). Objectives that read ``entropy`` or ``vocab`` need the
            trainer's forward; this helper computes ``logp`` only.
    """
    if not isinstance(objective, Objective):
        objective = Objective(objective)
    _check_positive("broad_backward", "micro_batch_size", micro_batch_size)
    reads = frozenset().union(*(term.slots_read() for term in objective.chain.terms))
    if reads & {"entropy", "vocab"}:
        raise ValueError(
            "broad_backward: the objective reads 'entropy'/'vocab', which this helper does not "
            "compute; use the trainer (rlobj.train) micro-batching for such objectives")
    batch = len(rollout)
    if tuple(rewards.shape) != (batch,):
        raise ValueError(f"broad_backward: rewards must have shape ({batch},), got {tuple(rewards.shape)}")

    def run_forward(rows: slice) -> Tensor:
        part = take(rollout, torch.arange(batch)[rows])
        if forward is not None:
            return forward(part)
        return sequence_logprobs(model, part.prompt_ids, part.prompt_mask, part.response_ids,
                                 part.response_mask, temperature=temperature)

    starts = list(range(0, batch, micro_batch_size))
    slices = [slice(s, min(s + micro_batch_size, batch)) for s in starts]
    if logp_old is None:
        with torch.no_grad():
            logp_old = torch.cat([run_forward(rows) for rows in slices])
    fields = dict(logp=logp_old.detach(), logp_old=logp_old.detach(), mask=rollout.response_mask,
                  rewards=rewards, group_ids=rollout.group_ids,
                  extras={"logp_rollout": rollout.logp_rollout, **(extras or {})})
    if logp_ref is not None:
        fields["logp_ref"] = logp_ref
    prepared = objective.prepare(**fields)
    states = objective.split(prepared, [rows.stop - rows.start for rows in slices])
    normalizer = Normalizer.from_masks([state.mask for state in states])
    total = torch.zeros((), dtype=torch.float64)
    sums: dict[str, float] = {}
    new_state = dict(term_state or prepared.term_state)
    for rows, state in zip(slices, states, strict=True):
        logp = run_forward(rows)
        out = objective.loss(state.update(logp=logp, cache={}), normalizer=normalizer,
                             term_state=term_state)
        out.loss.backward()
        total += out.loss.detach().double().cpu()
        for key, value in out.metrics.items():
            sums[key] = sums.get(key, 0.0) + float(value) / len(slices)
        new_state = out.term_state
    sums["loss"] = float(total)
    return BroadResult(loss=total.float(), metrics=sums, term_state=new_state,
                       micro_batches=len(slices))
