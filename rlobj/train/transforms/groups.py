r"""Transforms that drop or refill whole prompt groups: DAPO dynamic sampling, plain informative
groups, DARS extra rollouts for hard prompts, SELF greedy curation."""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.filters import (
    dars_cumulative_advantage,
    dars_extra_rollouts,
    dynamic_sampling,
    informative_groups,
    self_curation,
)
from rlobj.train.stages import Batch, StepContext, Transform
from rlobj.train.transforms._checks import check_choice, check_float, check_int, check_scored
from rlobj.train.transforms._common import (
    concat,
    criterion,
    draw,
    group_rows,
    keep_rows,
    prompts,
    select_groups,
    with_group_ids,
    with_metrics,
)

__all__ = ["InformativeGroups", "DynamicSampling", "DARS", "SelfCuration"]


class InformativeGroups(Transform):
    r"""Drop the groups whose rewards are all equal (no refill): :func:`~rlobj.rollout.filters.informative_groups`.

    The batch-level half of DAPO's dynamic sampling without the resampling loop (use
    :class:`DynamicSampling` to refill). The step may end with fewer groups, or none (an empty
    batch: the module skips the update).

    Args:
        keep_singletons: keep groups of one response (verl's rule). Default True.
        field: test this score field (e.g. ``"acc"``, verl's ``filter_groups.metric``) instead of
            the reward. Default None (the reward).

    Metrics: ``informative_groups/kept``, ``informative_groups/dropped`` (groups).
    """

    def __init__(self, keep_singletons: bool = True, field: str | None = None):
        self.keep_singletons = bool(keep_singletons)
        self.field = field

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "InformativeGroups")
        if not len(batch):
            return batch
        group_ids = batch.rollout.group_ids
        keep = informative_groups(criterion(batch, self.field, "InformativeGroups"), group_ids, self.keep_singletons)
        groups = len(group_rows(group_ids))
        kept = len(group_rows(group_ids[keep])) if bool(keep.any()) else 0
        return with_metrics(keep_rows(batch, keep), **{"informative_groups/kept": kept,
                                                       "informative_groups/dropped": groups - kept})

    def __repr__(self) -> str:
        return f"InformativeGroups(keep_singletons={self.keep_singletons}, field={self.field!r})"


class DynamicSampling(Transform):
    r"""DAPO dynamic sampling: keep only informative groups and resample until the batch is full.

    Round 1 is the step's own batch. Groups whose rewards are all equal
    (:func:`~rlobj.rollout.filters.informative_groups`) are dropped; while fewer than ``groups``
    informative groups are collected, round $k = 2, 3, \dots$ samples again through
    ``ctx.sample(records, salt=salt + k - 1)`` and ``ctx.score`` and adds the new informative
    groups. The first ``groups`` groups (in order of acceptance) are kept, exactly
    (:func:`~rlobj.rollout.filters.dynamic_sampling` does the bookkeeping); group ids are
    renumbered ``0..groups-1`` and each group's rows stay contiguous.

    Difference from the reference: DAPO (and verl's ``dapo_ray_trainer``) refills with *new
    prompts* from the data stream (a generation batch of 3x the train batch). A transform only
    has the step's records, so this one resamples *the same prompts*: with ``resample="dropped"``
    (default) the prompts not yet in the batch, so each prompt appears at most once while any
    remains (a prompt that is always solved, or never, cannot fill its slot; the step then
    ends short); with ``"all"`` every prompt of the step each round, so a prompt may fill
    several slots with independent groups (closer to DAPO's fixed batch size, at the price of
    duplicated prompts). When every prompt is already in the batch, ``"dropped"`` resamples all.

    Args:
        max_rounds: the most sampling rounds, the step's own batch included (verl
            ``max_num_gen_batches``; 1 = filter only, no refill). Default 10.
        groups: informative groups to train on. Default None: the number of prompts of the
            incoming batch (its distinct group ids).
        on_short: at the round cap with too few groups: ``"warn"`` (a ``UserWarning`` naming the
            counts; train on what was collected, possibly nothing) or ``"error"`` (raise
            :class:`~rlobj.ops.errors.RlobjInputError`). Default ``"warn"``.
        resample: ``"dropped"`` or ``"all"`` (see above). Default ``"dropped"``.
        keep_singletons: keep groups of one response (verl's rule). Default True.
        field: test this score field instead of the reward (verl ``filter_groups.metric``). Default None.
        salt: added to the round index in ``ctx.sample(..., salt=...)``. Default 0.

    Metrics: ``dynamic_sampling/rounds``, ``dynamic_sampling/groups_kept``,
    ``dynamic_sampling/groups_dropped`` (sampled but not kept), ``dynamic_sampling/groups_sampled``,
    ``dynamic_sampling/short_steps`` (running count of steps that ended short).
    State: running counters (steps, rounds, short steps).
    """

    def __init__(self, max_rounds: int = 10, groups: int | None = None,
                 on_short: Literal["warn", "error"] = "warn", resample: Literal["dropped", "all"] = "dropped",
                 keep_singletons: bool = True, field: str | None = None, salt: int = 0):
        check_int("DynamicSampling", "max_rounds", max_rounds, low=1)
        if groups is not None:
            check_int("DynamicSampling", "groups", groups, low=1)
        check_choice("DynamicSampling", "on_short", on_short, ("warn", "error"))
        check_choice("DynamicSampling", "resample", resample, ("dropped", "all"))
        check_int("DynamicSampling", "salt", salt)
        self.max_rounds, self.groups, self.on_short, self.resample = max_rounds, groups, on_short, resample
        self.keep_singletons, self.field, self.salt = bool(keep_singletons), field, salt
        self.steps = self.rounds_total = self.short_steps = 0

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        by = "DynamicSampling"
        check_scored(batch, by)
        if not len(batch):
            return batch
        _, records = prompts(batch)
        needed = self.groups if self.groups is not None else len(records)
        parts: list[Batch] = []
        accepted: set[int] = set()  # prompt positions with an informative group so far

        def sample(k: int) -> dict:
            if k == 0:
                part, prompt_of = batch, list(range(len(records)))
            else:
                pending = [i for i in range(len(records)) if i not in accepted] if self.resample == "dropped" else []
                prompt_of = pending or list(range(len(records)))
                part = draw(ctx, [records[i] for i in prompt_of], by, salt=self.salt + k)
            parts.append(part)
            values, group_ids = criterion(part, self.field, by), part.rollout.group_ids
            informative = informative_groups(values, group_ids, self.keep_singletons)
            for j, rows in enumerate(group_rows(group_ids).values()):
                if bool(informative[rows[0]]):
                    accepted.add(prompt_of[j])
            return {"rewards": values, "group_ids": group_ids,
                    "round": torch.full(values.shape, k, dtype=torch.long, device=values.device),
                    "row": torch.arange(len(part), device=values.device)}

        result = dynamic_sampling(sample, needed, max_rounds=self.max_rounds, keep_singletons=self.keep_singletons,
                                  allow_shortfall=True)
        rounds_of, rows_of = result.batch["round"].tolist(), result.batch["row"].tolist()
        pieces = [parts[k].select([r for kk, r in zip(rounds_of, rows_of) if kk == k]) for k in range(len(parts))]
        if rows_of:
            out = with_group_ids(concat(pieces, ctx, by), result.batch["group_ids"].cpu())
        else:
            out = batch.select([])
        self.steps += 1
        self.rounds_total += result.rounds
        if result.groups < needed:
            message = (f"DynamicSampling: only {result.groups} of {needed} requested groups had non-equal rewards "
                       f"after {result.rounds} rounds (max_rounds={self.max_rounds}, {result.sampled_groups} groups "
                       f"sampled, resample={self.resample!r}); the prompts may be too easy or too hard")
            if self.on_short == "error":
                raise RlobjInputError(message + ". Raise max_rounds, lower groups, or pass on_short='warn'.")
            self.short_steps += 1
            warnings.warn(message + f"; training on the {result.groups} groups collected.", UserWarning, stacklevel=2)
        return with_metrics(out, **{"dynamic_sampling/rounds": result.rounds,
                                    "dynamic_sampling/groups_kept": result.groups,
                                    "dynamic_sampling/groups_dropped": result.sampled_groups - result.groups,
                                    "dynamic_sampling/groups_sampled": result.sampled_groups,
                                    "dynamic_sampling/short_steps": self.short_steps})

    def state_dict(self) -> dict:
        return {"steps": self.steps, "rounds": self.rounds_total, "short_steps": self.short_steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state.get("steps", 0))
        self.rounds_total = int(state.get("rounds", 0))
        self.short_steps = int(state.get("short_steps", 0))

    def __repr__(self) -> str:
        return (f"DynamicSampling(max_rounds={self.max_rounds}, groups={self.groups}, on_short={self.on_short!r}, "
                f"resample={self.resample!r}, keep_singletons={self.keep_singletons}, field={self.field!r}, "
                f"salt={self.salt})")


class DARS(Transform):
    r"""DARS difficulty-adaptive rollouts: extra rollouts for hard prompts, merged into their groups.

    For each group of $N$ first-pass rollouts with $c$ correct ($r > $ ``threshold``),
    :func:`~rlobj.rollout.filters.dars_extra_rollouts` gives $\Delta n$ ($0$ when $p = c/N \ge
    1/2$). Prompts with the same $\Delta n$ are sampled together with
    ``ctx.sample(records, n=Δn, salt=salt + i)``, scored with ``ctx.score``, and the new rows
    join their prompt's group (same group id, rows of a group contiguous) so the advantages see
    the enlarged group. Groups of different sizes are handled size by size ($N$ is each group's
    own size).

    Yang et al., DARS, arXiv 2508.13755 (the depth part; DARS-B's larger breadth batch is the
    data module's batch size). Reference: $N = 8$, $N_\max$ 32 (ET) / 64 (HW).

    Args:
        schedule: ``"et"`` (equal treatment) or ``"hw"`` (hardness-weighted). Default ``"et"``.
        max_rollouts: $N_\max$ per prompt after the extra pass (None: 32 for ET, 64 for HW).
        use_std: size the extra pass for z-scored advantages
            (:func:`~rlobj.rollout.filters.dars_cumulative_advantage`). Default False.
        threshold: a row is correct iff its reward (or ``field``) $>$ ``threshold``. Default 0.5.
        field: read correctness from this score field instead of the reward. Default None.
        salt: base of the ``salt`` of the extra sampling calls. Default 1000.

    Metrics: ``dars/extra_rollouts`` (rows added), ``dars/prompts_extended``,
    ``dars/cumulative_advantage`` (mean $S(p)$ of the first pass).
    """

    def __init__(self, schedule: Literal["et", "hw"] = "et", max_rollouts: int | None = None, use_std: bool = False,
                 threshold: float = 0.5, field: str | None = None, salt: int = 1000):
        check_choice("DARS", "schedule", schedule, ("et", "hw"))
        if max_rollouts is not None:
            check_int("DARS", "max_rollouts", max_rollouts, low=1)
        check_float("DARS", "threshold", threshold)
        check_int("DARS", "salt", salt)
        self.schedule, self.max_rollouts, self.use_std = schedule, max_rollouts, bool(use_std)
        self.threshold, self.field, self.salt = float(threshold), field, salt

    def extra_rollouts(self, batch: Batch) -> dict[int, int]:
        """Group id -> extra rollouts $\\Delta n$ for the groups of a scored batch."""
        correct = criterion(batch, self.field, "DARS") > self.threshold
        rows = group_rows(batch.rollout.group_ids)
        extra: dict[int, int] = {}
        for size in sorted({len(r) for r in rows.values()}):
            gids = [g for g, r in rows.items() if len(r) == size]
            counts = torch.tensor([int(correct[rows[g]].sum()) for g in gids], dtype=torch.long)
            values = dars_extra_rollouts(counts, rollouts=size, schedule=self.schedule,
                                         max_rollouts=self.max_rollouts, use_std=self.use_std)
            extra.update(zip(gids, values.tolist()))
        return extra

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "DARS")
        if not len(batch):
            return batch
        rows = group_rows(batch.rollout.group_ids)
        gids, records = prompts(batch)
        extra = self.extra_rollouts(batch)
        correct = criterion(batch, self.field, "DARS") > self.threshold
        accuracy = torch.tensor([float(correct[rows[g]].float().mean()) for g in gids], dtype=torch.float64)
        spread = float(dars_cumulative_advantage(accuracy, self.use_std).mean())
        buckets: dict[int, list[int]] = {}
        for j, g in enumerate(gids):
            if extra[g] > 0:
                buckets.setdefault(extra[g], []).append(j)
        parts = [batch]
        for i, (count, members) in enumerate(sorted(buckets.items())):
            drawn = draw(ctx, [records[j] for j in members], "DARS", n=count, salt=self.salt + i)
            new_ids = list(group_rows(drawn.rollout.group_ids))
            to_original = {new: gids[members[k]] for k, new in enumerate(new_ids)}
            parts.append(with_group_ids(drawn, [to_original[g] for g in drawn.rollout.group_ids.tolist()]))
        merged = concat(parts, ctx, "DARS", renumber_groups=False) if len(parts) > 1 else batch
        if len(parts) > 1:  # each group's rows together, groups in their original order
            merged = select_groups(merged, gids)
        added = len(merged) - len(batch)
        return with_metrics(merged, **{"dars/extra_rollouts": added,
                                       "dars/prompts_extended": sum(len(m) for m in buckets.values()),
                                       "dars/cumulative_advantage": spread})

    def __repr__(self) -> str:
        return (f"DARS(schedule={self.schedule!r}, max_rollouts={self.max_rollouts}, use_std={self.use_std}, "
                f"threshold={self.threshold}, field={self.field!r}, salt={self.salt})")


class SelfCuration(Transform):
    r"""SELF curation: drop the prompts whose greedy answer is already correct.

    Each prompt of the step is decoded greedily once (``ctx.sample(records, n=1, salt=salt,
    greedy=True)``) and scored (``ctx.score``); :func:`~rlobj.rollout.filters.self_curation`
    keeps the groups whose greedy reward differs from ``correct_reward``. When no prompt is kept
    the batch is empty and the module skips the update.

    Difference from the reference: SELF decodes greedily *before* sampling and samples only
    the kept prompts; as a transform (after the sampler) the dropped prompts' samples are
    wasted (one generation pass), the kept rows are the same.

    Nguyen et al., "The Reasoning Boundary Paradox", arXiv 2510.02230 (SELF).

    Args:
        correct_reward: the reward of a correct answer (exact comparison). Default 1.0.
        salt: the ``salt`` of the greedy sampling call. Default 2000.

    Metrics: ``self_curation/greedy_accuracy``, ``self_curation/kept``, ``self_curation/dropped`` (prompts).
    """

    def __init__(self, correct_reward: float = 1.0, salt: int = 2000):
        check_float("SelfCuration", "correct_reward", correct_reward)
        check_int("SelfCuration", "salt", salt)
        self.correct_reward, self.salt = float(correct_reward), salt

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "SelfCuration")
        if not len(batch):
            return batch
        gids, records = prompts(batch)
        greedy = draw(ctx, records, "SelfCuration", n=1, salt=self.salt, greedy=True)
        first_rows = [r[0] for r in group_rows(greedy.rollout.group_ids).values()]
        greedy_rewards = greedy.rewards[first_rows].cpu()
        keep = self_curation(greedy_rewards, self.correct_reward).tolist()
        out = select_groups(batch, [g for g, k in zip(gids, keep) if k])
        return with_metrics(out, **{"self_curation/greedy_accuracy":
                                    float((greedy_rewards == self.correct_reward).float().mean()),
                                    "self_curation/kept": sum(keep), "self_curation/dropped": len(keep) - sum(keep)})

    def __repr__(self) -> str:
        return f"SelfCuration(correct_reward={self.correct_reward}, salt={self.salt})"
