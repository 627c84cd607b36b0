r"""The contracts of the training pipeline (DESIGN.md section 6): what flows between the stages.

One RL step is::

    records --sampler--> Batch --scorer--> Batch(scores) --transforms--> Batch
            --providers--> inputs of the objective --update--> gradients, optimizer steps --sync--> engine

* :class:`Batch` is what samplers produce and transforms pass on: the
  :class:`~rlobj.rollout.RolloutBatch`, the dataset record each row answers, one :class:`Score`
  per row once scored, named per-row tensors (``extras``) and the step's metrics.
* a **sampler** maps records to a :class:`Batch` (plain sampling, EAD, LATR, segments, BroRL);
* a **scorer** maps a :class:`Batch` to one :class:`Score` per row (verifiers, composites);
* a **transform** maps a scored :class:`Batch` to a scored :class:`Batch` and may call
  :meth:`StepContext.sample` to draw more (DAPO's refill, DARS);
* a **provider** computes one named input a term reads (``extras:logp_proxy``, ``logp_ref``,
  ``extras:vocab_ref``, ...) once per rollout batch, in micro-batches (see
  :mod:`rlobj.train.providers`).

Stages with state (transforms with a running statistic, samplers with pending samples) implement
``state_dict()`` / ``load_state_dict()``; the module saves it in checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import RolloutBatch
from rlobj.rollout._batching import concat_rollouts, take

__all__ = ["Score", "Batch", "StepContext", "Sampler", "Scorer", "Transform", "Stateful"]


@dataclass(frozen=True)
class Score:
    """What a scorer says about one sampled response.

    Attributes:
        reward: the scalar outcome reward.
        token_rewards: optional per-response-token rewards (length = the response's tokens).
        fields: named facts a term may read through ``extras``: the extracted answer, per-step
            verdicts, a format flag, reward components. Numbers and equal-length number lists
            become tensors (``Batch.score_field``).
    """

    reward: float
    token_rewards: Sequence[float] | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """A rollout batch on its way through the pipeline.

    Attributes:
        rollout: the sampled token ids, masks, log-probs of the sampling distribution, groups.
        records: ``records[b]`` is the dataset row that response ``b`` answers.
        scores: one :class:`Score` per row once scored (None before).
        extras: named per-row tensors (shape ``[batch]`` or ``[batch, seq]``) that samplers,
            scorers and transforms attach (``off_policy``, ``guided``, ...); they reach the
            objective's ``extras`` under the same names.
        metrics: named floats of this step (sampling, scoring, filtering).
        on_policy: ``rollout.logp_rollout`` is the current policy at the plain temperature
            (False for annealed temperatures or samples begun under older weights: the
            trainer then recomputes ``logp_old``).
    """

    rollout: RolloutBatch
    records: list[dict]
    scores: list[Score] | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    on_policy: bool = True

    def __post_init__(self):
        if len(self.records) != len(self.rollout):
            raise RlobjInputError(f"Batch.records: expected one record per row ({len(self.rollout)}), "
                                  f"got {len(self.records)}")
        if self.scores is not None and len(self.scores) != len(self.rollout):
            raise RlobjInputError(f"Batch.scores: expected one Score per row ({len(self.rollout)}), "
                                  f"got {len(self.scores)}")

    def __len__(self) -> int:
        return len(self.rollout)

    @property
    def rewards(self) -> Tensor:
        """``[batch]`` float32 rewards of the scores (on the rollout's device)."""
        if self.scores is None:
            raise RlobjInputError("Batch.rewards: the batch has not been scored yet (no scorer ran)")
        return torch.tensor([s.reward for s in self.scores], dtype=torch.float32,
                            device=self.rollout.response_ids.device)

    def score_field(self, name: str) -> Tensor:
        """The named score field of every row as a tensor (``[batch]`` or ``[batch, k]``)."""
        if self.scores is None:
            raise RlobjInputError(f"score field {name!r}: the batch has not been scored yet")
        missing = [b for b, s in enumerate(self.scores) if name not in s.fields]
        if missing:
            raise RlobjInputError(f"score field {name!r}: the scorer gave no such field for rows {missing[:8]}; "
                                  "use a scorer that reports it")
        values = [s.fields[name] for s in self.scores]
        try:
            return torch.as_tensor(values, device=self.rollout.response_ids.device)
        except (TypeError, ValueError) as error:
            raise RlobjInputError(f"score field {name!r}: values do not form a tensor ({error})") from error

    def action_mask(self) -> Tensor:
        """``[batch, seq]`` bool: the tokens the loss counts, ``response_mask`` without the
        observation tokens a multi-turn sampler marks in ``extras['observation_mask']``."""
        mask = self.rollout.response_mask
        observation = self.extras.get("observation_mask")
        if observation is None:
            return mask
        if tuple(observation.shape) != tuple(mask.shape) or observation.dtype != torch.bool:
            raise RlobjInputError(f"Batch.extras['observation_mask']: expected a bool tensor of shape "
                                  f"{tuple(mask.shape)}, got {observation.dtype} {tuple(observation.shape)}")
        return mask & ~observation.to(mask.device)

    def token_rewards(self) -> Tensor | None:
        """``[batch, seq]`` token rewards from the scores, or None when no score has them."""
        if self.scores is None or all(s.token_rewards is None for s in self.scores):
            return None
        mask = self.rollout.response_mask
        out = torch.zeros(mask.shape, dtype=torch.float32)
        for b, score in enumerate(self.scores):
            values = list(score.token_rewards or [])
            length = int(mask[b].sum())
            if score.token_rewards is not None and len(values) != length:
                raise RlobjInputError(f"Score.token_rewards of row {b}: expected {length} values (its response "
                                      f"tokens), got {len(values)}")
            out[b, :len(values)] = torch.tensor(values, dtype=torch.float32)
        return out.to(mask.device)

    def select(self, rows: Tensor | Sequence[int]) -> Batch:
        """The rows ``rows`` (in that order), with every per-row field cut alike."""
        index = torch.as_tensor(rows, dtype=torch.long)
        picked = index.tolist()
        extras = {k: v[index.to(v.device)] for k, v in self.extras.items()}
        return Batch(rollout=take(self.rollout, index), records=[self.records[i] for i in picked],
                     scores=None if self.scores is None else [self.scores[i] for i in picked],
                     extras=extras, metrics=dict(self.metrics), on_policy=self.on_policy)

    @staticmethod
    def concat(batches: Sequence[Batch], pad_token_id: int, renumber_groups: bool = True) -> Batch:
        """Rows of several batches in order (re-padded); group ids are offset so groups stay distinct."""
        batches = [b for b in batches if len(b)]
        if not batches:
            raise RlobjInputError("Batch.concat: no rows to concatenate")
        if len(batches) == 1:
            return batches[0]
        rollouts, offset = [], 0
        for part in batches:
            rollout = part.rollout
            if renumber_groups:
                _, inverse = torch.unique(rollout.group_ids, return_inverse=True)
                rollout = dataclasses.replace(rollout, group_ids=inverse.to(rollout.group_ids.dtype) + offset)
                offset = int(rollout.group_ids.max()) + 1
            rollouts.append(rollout)
        joined = concat_rollouts(rollouts, pad_token_id)
        keys = set(batches[0].extras)
        if any(set(b.extras) != keys for b in batches):
            raise RlobjInputError("Batch.concat: the batches carry different extras "
                                  f"({[sorted(b.extras) for b in batches]})")
        extras = {}
        for key in keys:
            extras[key] = _cat_rows([b.extras[key] for b in batches], joined.response_ids.shape[1])
        scored = [b.scores is not None for b in batches]
        if any(scored) and not all(scored):
            raise RlobjInputError("Batch.concat: some batches are scored and some are not")
        metrics: dict[str, float] = {}
        for b in batches:
            metrics.update(b.metrics)
        return Batch(rollout=joined,
                     records=[r for b in batches for r in b.records],
                     scores=[s for b in batches for s in b.scores] if all(scored) else None,
                     extras=extras, metrics=metrics, on_policy=all(b.on_policy for b in batches))


def _cat_rows(values: list[Tensor], width: int) -> Tensor:
    """Concatenate per-row tensors; ``[batch, seq]`` ones are cut or right-padded with zeros to ``width``."""
    if values[0].dim() < 2:
        return torch.cat(values)
    return torch.cat([torch.nn.functional.pad(v[:, :width], (0, max(width - v.shape[1], 0))) for v in values])


@dataclass
class StepContext:
    """What a stage may use during one RL step (built by the module; stages never hold it).

    Attributes:
        step: index of the data batch (the DataModule's step).
        rl_updates: optimizer updates done in the RL phase so far (schedules read it).
        seed: the run's seed; stages derive their streams from (seed, step, rank).
        rank, world_size: data-parallel position.
        group_size: responses sampled per prompt.
        engine: the generation engine (``generate``, ``update_weights``).
        models: the policy and reference models and their forward passes
            (:class:`rlobj.train.models.Models`).
        sample: ``sample(records, n=None, salt=0, **sampling_changes) -> Batch``: run the sampler
            again (unscored; ``n`` responses per record, default ``group_size``; ``salt`` gives
            a fresh random stream; ``sampling_changes`` override
            :class:`~rlobj.rollout.SamplingConfig` fields, e.g. ``greedy=True``).
            Transforms that draw more rollouts call it.
        score: ``score(batch) -> Batch``: run the scorer on a batch.
        encode / decode: text <-> token ids of the tokenizer.
        pad_token_id: the tokenizer's pad id (for :meth:`Batch.concat`).
        row_offset: index of this rank's first row in the global batch (rows of lower ranks
            come first), set before the providers run: per-row random draws keyed by
            ``row_offset + row`` do not depend on the number of ranks.
        special_token_ids: the tokenizer's special-token ids (a multi-turn sampler drops them
            from observations, so a tool's output cannot end a turn or fake a role marker).
    """

    step: int
    rl_updates: int
    seed: int
    rank: int
    world_size: int
    group_size: int
    engine: Any
    models: Any
    sample: Callable[..., Batch]
    score: Callable[[Batch], Batch]
    encode: Callable[[str], list[int]]
    decode: Callable[[RolloutBatch], list[str]]
    pad_token_id: int = 0
    sampling: Any = None
    row_offset: int = 0
    special_token_ids: tuple[int, ...] = ()


@runtime_checkable
class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Sampler:
    """Base of samplers: ``sample(ctx, records, n, salt) -> Batch`` (unscored).

    ``samples_evaluation = True`` makes evaluation (pass@k) sample through the sampler too
    (multi-turn episodes); otherwise evaluation draws plain completions from the engine.
    """

    samples_evaluation: bool = False

    def sample(self, ctx: StepContext, records: list[dict], n: int, salt: int = 0) -> Batch:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} does not define sample()")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class Scorer:
    """Base of scorers: ``scorer(ctx, batch) -> list[Score]`` (one per row)."""

    def __call__(self, ctx: StepContext, batch: Batch) -> list[Score]:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} does not define __call__")

    def close(self) -> None:
        return None


class Transform:
    """Base of batch transforms: ``transform(ctx, batch) -> batch`` on scored batches."""

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} does not define __call__")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
