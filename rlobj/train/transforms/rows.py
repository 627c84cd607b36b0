r"""Transforms that choose groups or rows by a statistic: RLPR's std filter, PROF, RoRecomp."""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import RolloutBatch
from rlobj.rollout.filters import compensation_step, prof_filter, rorecomp_priority, std_filter
from rlobj.train.stages import Batch, Score, StepContext, Transform
from rlobj.train.transforms._checks import check_choice, check_float, check_int, check_scored
from rlobj.train.transforms._common import (
    concat,
    criterion,
    generator,
    group_rows,
    keep_rows,
    ragged_field,
    with_metrics,
)

__all__ = ["StdFilter", "ProfFilter", "RoRecomp"]


class StdFilter(Transform):
    r"""RLPR's std filter: drop the groups whose reward std is below ``beta`` times its running mean.

    :func:`~rlobj.rollout.filters.std_filter` at step ``ctx.step``; the EMA of the mean group
    std is this transform's state (checkpointed). No refill: the step trains on fewer groups
    (or none: an empty batch, the module skips the update).

    Yu et al., "RLPR", arXiv 2506.18254; reference defaults (OpenBMB/RLPR): ``beta`` 0.5 (Qwen;
    0.9 Llama, 1.0 Gemma), ``rate`` 0.99, EMA from step 6, filtering from step 11.

    Args:
        beta: $\beta \ge 0$. Default 0.5.
        rate: EMA rate $\rho \in [0, 1]$. Default 0.99.
        ema_start: first step that updates the EMA. Default 6.
        filter_start: first step that filters. Default 11.
        unbiased: Bessel-corrected group std. Default True.
        field: filter on this score field instead of the reward. Default None.

    Metrics: ``std_filter/kept``, ``std_filter/dropped`` (groups), ``std_filter/ema`` (once tracked).
    """

    def __init__(self, beta: float = 0.5, rate: float = 0.99, ema_start: int = 6, filter_start: int = 11,
                 unbiased: bool = True, field: str | None = None):
        check_float("StdFilter", "beta", beta, low=0.0)
        check_float("StdFilter", "rate", rate, low=0.0, high=1.0)
        check_int("StdFilter", "ema_start", ema_start, low=0)
        check_int("StdFilter", "filter_start", filter_start, low=0)
        self.beta, self.rate, self.ema_start, self.filter_start = float(beta), float(rate), ema_start, filter_start
        self.unbiased, self.field = bool(unbiased), field
        self.ema: float | None = None

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "StdFilter")
        if not len(batch):
            return batch
        values = criterion(batch, self.field, "StdFilter")
        group_ids = batch.rollout.group_ids
        result = std_filter(values, group_ids, self.ema, int(ctx.step), beta=self.beta, rate=self.rate,
                            ema_start=self.ema_start, filter_start=self.filter_start, unbiased=self.unbiased)
        self.ema = result.ema
        groups = len(group_rows(group_ids))
        kept = len(group_rows(group_ids[result.keep])) if bool(result.keep.any()) else 0
        metrics = {"std_filter/kept": kept, "std_filter/dropped": groups - kept}
        if self.ema is not None:
            metrics["std_filter/ema"] = self.ema
        return with_metrics(keep_rows(batch, result.keep), **metrics)

    def state_dict(self) -> dict:
        return {"ema": self.ema}

    def load_state_dict(self, state: dict) -> None:
        ema = state.get("ema")
        self.ema = None if ema is None else float(ema)

    def __repr__(self) -> str:
        return (f"StdFilter(beta={self.beta}, rate={self.rate}, ema_start={self.ema_start}, "
                f"filter_start={self.filter_start}, unbiased={self.unbiased}, field={self.field!r})")


class ProfFilter(Transform):
    r"""PROF: keep the ``keep`` responses of each group whose process (PRM step scores) agrees with the outcome.

    :func:`~rlobj.rollout.filters.prof_filter` on the per-step PRM scores the scorer reports in
    ``Score.fields[step_scores_field]`` (a number or a list of numbers per response; lists may
    differ in length). The kept rows go on to the objective (GRPO on the kept rows, as in the
    paper); groups need at least ``keep`` responses (the paper samples $n = 2m$).

    Ye et al., PROF, arXiv 2509.03403.

    Args:
        step_scores_field: the score field with each response's PRM step scores. Default ``"step_scores"``.
        correct_field: the score field with each response's outcome (truthy = correct). Default
            None: correct iff the reward $>$ ``threshold``.
        keep: $m \ge 1$ responses kept per group. Default 4.
        variant: ``"both"`` (PROF-BOTH) or ``"pos"`` (random incorrect rows). Default ``"both"``.
        lam: step-count penalty $\lambda \ge 0$. Default 0.
        long_steps: $H_\lambda$ (None: only one-step responses are penalised). Default None.
        threshold: see ``correct_field``. Default 0.5.
        salt: random stream of ``"pos"`` (with the run seed, step and rank). Default 3000.

    Metrics: ``prof/kept``, ``prof/dropped`` (rows), ``prof/consistency`` (mean $r^\text{pro}$ of the kept rows).
    """

    def __init__(self, step_scores_field: str = "step_scores", correct_field: str | None = None, keep: int = 4,
                 variant: Literal["both", "pos"] = "both", lam: float = 0.0, long_steps: int | None = None,
                 threshold: float = 0.5, salt: int = 3000):
        check_int("ProfFilter", "keep", keep, low=1)
        check_choice("ProfFilter", "variant", variant, ("both", "pos"))
        check_float("ProfFilter", "lam", lam, low=0.0)
        if long_steps is not None:
            check_int("ProfFilter", "long_steps", long_steps, low=1)
        check_float("ProfFilter", "threshold", threshold)
        check_int("ProfFilter", "salt", salt)
        self.step_scores_field, self.correct_field, self.keep, self.variant = step_scores_field, correct_field, keep, variant
        self.lam, self.long_steps, self.threshold, self.salt = float(lam), long_steps, float(threshold), salt

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "ProfFilter")
        if not len(batch):
            return batch
        if self.correct_field is None:
            correct = (batch.rewards > self.threshold).cpu()
        else:
            correct = criterion(batch, self.correct_field, "ProfFilter").cpu() != 0
        step_scores, step_mask = ragged_field(batch, self.step_scores_field, "ProfFilter")
        empty = (~step_mask.any(-1)).nonzero().flatten().tolist()
        if empty:
            raise RlobjInputError(f"ProfFilter: score field {self.step_scores_field!r} is empty for rows {empty[:8]}; "
                                  "PROF needs at least one PRM step score per response")
        sizes = {g: len(r) for g, r in group_rows(batch.rollout.group_ids).items()}
        small = {g: n for g, n in sizes.items() if n < self.keep}
        if small:
            raise RlobjInputError(f"ProfFilter: keep={self.keep} responses per group, but groups {list(small)[:8]} "
                                  f"have only {sorted(set(small.values()))}; sample at least keep (the paper: 2 * keep)")
        result = prof_filter(correct, step_scores, step_mask, batch.rollout.group_ids.cpu(), keep=self.keep,
                             variant=self.variant, lam=self.lam, long_steps=self.long_steps,
                             generator=generator(ctx, self.salt))
        kept = int(result.keep.sum())
        consistency = float(result.consistency[result.keep].mean()) if kept else 0.0
        return with_metrics(keep_rows(batch, result.keep), **{"prof/kept": kept, "prof/dropped": len(batch) - kept,
                                                              "prof/consistency": consistency})

    def __repr__(self) -> str:
        return (f"ProfFilter(step_scores_field={self.step_scores_field!r}, correct_field={self.correct_field!r}, "
                f"keep={self.keep}, variant={self.variant!r}, lam={self.lam}, long_steps={self.long_steps}, "
                f"threshold={self.threshold}, salt={self.salt})")


_COMPENSATION = "rorecomp_compensation"


class RoRecomp(Transform):
    r"""RoRecomp: train on the priority rows (short correct, long incorrect) and replay the others later.

    :func:`~rlobj.rollout.filters.rorecomp_priority` keeps, in each group, the
    $\lceil\alpha n_c\rceil$ shortest correct and $\lceil\alpha n_w\rceil$ longest incorrect
    responses. With ``capacity`` set, the other rows enter a FIFO replay buffer
    (:func:`~rlobj.rollout.filters.compensation_step`, this transform's checkpointed state);
    when it holds ``capacity`` rows and the gate (probability ``p_comp``) opens, its
    ``batch_size`` oldest rows are appended to the step as a compensation batch: the rows of
    one original group form one group, and ``extras["rorecomp_compensation"]`` flags them (the
    flag is attached to every row whenever ``capacity`` is set, so the extras are the same on
    every step). The buffer never holds more than ``capacity`` rows: rows pushed out of it
    (oldest first) are discarded, whether the gate was closed or the step deferred more rows
    than one compensation batch takes.

    Differences from the paper (Li et al., RoRecomp, arXiv 2509.25958; no code released):
    the paper computes advantages on the full group and trains on the priority subset; here
    the objective computes them on the rows it receives, i.e. on the priority subset of each
    group. The paper's compensation batch is an extra update step; here its rows join this
    step's update (they were sampled by an older policy: the batch is then marked
    ``on_policy=False`` so the trainer recomputes ``logp_old``). ``alpha``, ``capacity``,
    ``batch_size`` and ``p_comp`` are UNVERIFIED (tuned in the paper).

    Args:
        alpha: $\alpha \in (0, 1]$. Default 0.5.
        threshold: correct iff reward $>$ ``threshold``. Default 0.5.
        length_field: score field with each response's length (e.g. tool calls in agentic
            runs). Default None: response tokens.
        capacity: replay buffer size in rows; None disables compensation. Default None.
        batch_size: rows per compensation batch ($\le$ ``capacity``; None: ``capacity``). Default None.
        p_comp: probability that a full buffer yields a compensation batch. Default 1.0.
        salt: random stream of the gate (with the run seed, step and rank). Default 4000.

    Metrics: ``rorecomp/priority``, ``rorecomp/deferred``, ``rorecomp/compensation``,
    ``rorecomp/discarded`` (rows), ``rorecomp/buffer`` (rows waiting).
    """

    def __init__(self, alpha: float = 0.5, threshold: float = 0.5, length_field: str | None = None,
                 capacity: int | None = None, batch_size: int | None = None, p_comp: float = 1.0, salt: int = 4000):
        check_float("RoRecomp", "alpha", alpha, low=0.0, high=1.0)
        if alpha <= 0:
            raise RlobjInputError(f"RoRecomp.alpha: expected in (0, 1], got {alpha}")
        check_float("RoRecomp", "threshold", threshold)
        if capacity is not None:
            check_int("RoRecomp", "capacity", capacity, low=1)
        if batch_size is not None:
            check_int("RoRecomp", "batch_size", batch_size, low=1)
            if capacity is None or batch_size > capacity:
                raise RlobjInputError(f"RoRecomp.batch_size: expected <= capacity ({capacity}), got {batch_size}")
        check_float("RoRecomp", "p_comp", p_comp, low=0.0, high=1.0)
        check_int("RoRecomp", "salt", salt)
        self.alpha, self.threshold, self.length_field = float(alpha), float(threshold), length_field
        self.capacity, self.batch_size, self.p_comp, self.salt = capacity, batch_size, float(p_comp), salt
        self.buffer: tuple = ()  # items: (origin "step:group", one-row Batch)

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "RoRecomp")
        if not len(batch):
            return batch
        rewards = batch.rewards
        if self.length_field is None:
            lengths = batch.rollout.response_lengths.to(rewards.device)
        else:
            lengths = criterion(batch, self.length_field, "RoRecomp").to(rewards.device)
        group_ids = batch.rollout.group_ids.to(rewards.device)
        priority = rorecomp_priority(rewards, lengths, group_ids, self.alpha, self.threshold).cpu()
        out = keep_rows(batch, priority)
        metrics = {"rorecomp/priority": int(priority.sum()), "rorecomp/deferred": int((~priority).sum()),
                   "rorecomp/compensation": 0}
        if self.capacity is None:
            return with_metrics(out, **metrics)
        deferred = (~priority).nonzero().flatten().tolist()
        ids = batch.rollout.group_ids.tolist()
        items = [(f"{ctx.step}:{ids[r]}", batch.select([r])) for r in deferred]
        gate = bool(torch.rand((), generator=generator(ctx, self.salt)) < self.p_comp)
        size = self.batch_size or self.capacity
        step = compensation_step(self.buffer, items, self.capacity, size, gate=gate)
        # an open gate takes only batch_size rows: cut what is left back to capacity (oldest first),
        # the pure function's own overflow rule, so the buffer stays bounded
        bounded = compensation_step(step.buffer, (), self.capacity, size, gate=False) \
            if len(step.buffer) > self.capacity else step
        self.buffer = bounded.buffer
        metrics["rorecomp/discarded"] = len(step.discarded) + (len(bounded.discarded) if bounded is not step else 0)
        parts = [_flag(out, False)] if len(out) else []
        if step.compensation:
            by_origin: dict[str, list[Batch]] = {}
            for origin, row in step.compensation:
                by_origin.setdefault(origin, []).append(row)
            for rows in by_origin.values():  # one group per original group
                group = concat(rows, ctx, "RoRecomp", renumber_groups=False)
                parts.append(dataclasses.replace(_flag(group, True), on_policy=False))
            metrics["rorecomp/compensation"] = len(step.compensation)
        metrics["rorecomp/buffer"] = len(self.buffer)
        merged = concat(parts, ctx, "RoRecomp", renumber_groups=True) if parts else _flag(out, False)
        return with_metrics(merged, **metrics)

    def state_dict(self) -> dict:
        return {"buffer": [{"origin": origin, **_batch_state(row)} for origin, row in self.buffer]}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = tuple((item["origin"], _batch_from_state(item)) for item in state.get("buffer", []))

    def __repr__(self) -> str:
        return (f"RoRecomp(alpha={self.alpha}, threshold={self.threshold}, length_field={self.length_field!r}, "
                f"capacity={self.capacity}, batch_size={self.batch_size}, p_comp={self.p_comp}, salt={self.salt})")


def _flag(batch: Batch, value: bool) -> Batch:
    flags = torch.full((len(batch),), value, dtype=torch.bool, device=batch.rollout.response_ids.device)
    return dataclasses.replace(batch, extras={**batch.extras, _COMPENSATION: flags})


_ROLLOUT_FIELDS = ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "logp_rollout", "group_ids",
                   "truncated")


def _batch_state(batch: Batch) -> dict:
    """A Batch as plain tensors, lists and dicts (for checkpoints)."""
    rollout = {name: getattr(batch.rollout, name).detach().cpu() for name in _ROLLOUT_FIELDS}
    rollout["finish_reasons"] = list(batch.rollout.finish_reasons)
    if batch.rollout.vision is not None:  # rows with images keep their pixel inputs
        rollout["vision"] = [{k: v.detach().cpu() for k, v in row.items()} for row in batch.rollout.vision.rows]
    scores = None if batch.scores is None else [
        {"reward": s.reward, "token_rewards": None if s.token_rewards is None else list(s.token_rewards),
         "fields": dict(s.fields)} for s in batch.scores]
    return {"rollout": rollout, "records": list(batch.records), "scores": scores,
            "extras": {k: v.detach().cpu() for k, v in batch.extras.items()}}


def _batch_from_state(state: dict) -> Batch:
    fields = dict(state["rollout"])
    fields["finish_reasons"] = tuple(fields["finish_reasons"])
    if fields.get("vision") is not None:
        from rlobj.rollout.vision import VisionInputs

        fields["vision"] = VisionInputs(tuple(fields["vision"]))
    scores = state.get("scores")
    return Batch(rollout=RolloutBatch(**fields), records=list(state["records"]),
                 scores=None if scores is None else [Score(**s) for s in scores],
                 extras=dict(state.get("extras", {})))
