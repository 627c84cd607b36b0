r"""Guidance transforms: hints for prompts the policy cannot solve (GHPO) and ground-truth rows
joined to the groups (ViSurf).

* :class:`GuidedResample` (GHPO): a group whose rollouts are all wrong is sampled again with the
  beginning of the reference solution in the prompt, at growing hint ratios, and the hinted
  group replaces it;
* :class:`GroundTruthRows` (ViSurf): the reference answer joins each group as one more response,
  scored like the others, and marked in ``extras["ground_truth"]`` for an SFT term
  (``sft(mask_key="ground_truth")``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.providers.base import Provider, register_provider
from rlobj.train.stages import Batch, Score, StepContext, Transform
from rlobj.train.transforms._checks import check_scored
from rlobj.train.transforms._common import (
    concat,
    draw,
    group_rows,
    prompts,
    with_group_ids,
    with_metrics,
)

__all__ = ["GuidedResample", "GroundTruthRows", "GroundTruthMask", "GHPO_HINT_TEMPLATE", "hinted_record"]

#: The hint sentence of the GHPO reference code (``ghpo_trainer.py``), prompt first.
GHPO_HINT_TEMPLATE = ("{prompt}\n The following text is the beginning part of the answer, which you can refer to "
                      "for solving the problem:\n{hint}")


def hinted_record(record: dict, ratio: float, solution_key: str, template: str) -> dict:
    """``record`` with ``solution[:round(len(solution) * ratio)]`` put into its prompt by ``template``."""
    if solution_key not in record:
        raise RlobjInputError(f"hint: record {record.get('prompt_id', record.get('prompt'))!r} has no "
                              f"{solution_key!r} field (the solution a hint is cut from); set solution_key")
    solution = str(record[solution_key])
    hint = solution[:round(len(solution) * ratio)]
    return {**record, "prompt": template.format(prompt=record["prompt"], hint=hint), "hint_fraction": float(ratio)}


class GuidedResample(Transform):
    r"""GHPO's adaptive guidance: all-wrong groups are sampled again with a growing solution prefix.

    For ratio $\rho_1 < \rho_2 < \dots$ in turn: every group whose rewards are all
    ``<= wrong_at`` (GHPO: accuracy reward $\le 0$) is sampled again (``ctx.sample``, fresh
    random stream) from its record with the hint ``solution[:round(len(solution) * rho)]`` put in
    the prompt by ``template``, scored, and the new group replaces the old one; groups still all
    wrong go on to the next ratio. The ratios 0.25, 0.5, 0.75 and the hint sentence are those of
    the authors' ``ghpo_trainer.py`` (``_generate_and_score_completions``), which cuts the
    solution by characters as here. The training prompt of a guided group *is* the hinted prompt
    (as in the reference), so its rows are ordinary on-policy samples. Records of replaced rows
    keep their ``prompt_id`` and get ``hint_fraction``.

    Args:
        ratios: hint ratios tried in order.
        solution_key: record field holding the reference solution.
        template: how the hint joins the prompt (``{prompt}``, ``{hint}``).
        wrong_at: a reward at or below it counts as wrong.
        salt: sampling salt of the first round (round $k$ uses ``salt + k``).

    Metrics: ``ghpo/guided_groups`` (groups replaced), ``ghpo/still_wrong`` (groups all wrong
    after the last ratio), ``ghpo/hint_ratio_mean`` (mean ratio of the guided groups).
    """

    def __init__(self, ratios: list[float] = (0.25, 0.5, 0.75), solution_key: str = "completion",  # noqa: B006
                 template: str = GHPO_HINT_TEMPLATE, wrong_at: float = 0.0, salt: int = 7919):
        ratios = [float(r) for r in ratios]
        if not ratios or any(not 0.0 < r <= 1.0 for r in ratios) or ratios != sorted(ratios):
            raise RlobjInputError(f"GuidedResample.ratios: expected increasing ratios in (0, 1], got {ratios!r}")
        if "{prompt}" not in template or "{hint}" not in template:
            raise RlobjInputError(f"GuidedResample.template: must contain '{{prompt}}' and '{{hint}}', got {template!r}")
        self.ratios, self.solution_key, self.template = ratios, solution_key, template
        self.wrong_at, self.salt = float(wrong_at), int(salt)

    def _wrong_groups(self, batch: Batch) -> list[int]:
        rewards = batch.rewards.cpu()
        return [gid for gid, rows in group_rows(batch.rollout.group_ids.cpu()).items()
                if bool((rewards[rows] <= self.wrong_at).all())]

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "GuidedResample")
        if not len(batch):
            return batch
        guided: dict[int, float] = {}  # original group position -> ratio of its current rows
        _, originals = prompts(batch)  # hints are cut into the original records, not hinted ones
        for round_index, ratio in enumerate(self.ratios):
            wrong = self._wrong_groups(batch)
            if not wrong:
                break
            gids, _ = prompts(batch)
            position = {gid: i for i, gid in enumerate(gids)}
            hinted = [hinted_record(originals[position[g]], ratio, self.solution_key, self.template) for g in wrong]
            fresh = draw(ctx, hinted, "GuidedResample", salt=self.salt + round_index)
            old_rows = group_rows(batch.rollout.group_ids.cpu())
            keep = [g for g in gids if g not in set(wrong)]
            # group ids: kept groups 0..K-1 in order, the fresh group j (answering wrong[j]) K + j
            kept = batch.select([r for g in keep for r in old_rows[g]])
            kept = with_group_ids(kept, [keep.index(g) for g in keep for _ in old_rows[g]])
            fresh = with_group_ids(fresh, fresh.rollout.group_ids.cpu() + len(keep))
            merged = concat([kept, fresh], ctx, "GuidedResample", renumber_groups=False)
            new_id = {g: (keep.index(g) if g in keep else len(keep) + wrong.index(g)) for g in gids}
            rows = group_rows(merged.rollout.group_ids.cpu())
            batch = merged.select([r for g in gids for r in rows[new_id[g]]])
            batch = with_group_ids(batch, [position[g] for g in gids for _ in rows[new_id[g]]])
            for g in wrong:
                guided[position[g]] = ratio
        still = len(self._wrong_groups(batch))
        ratios = list(guided.values())
        return with_metrics(batch, **{"ghpo/guided_groups": float(len(guided)), "ghpo/still_wrong": float(still),
                                      "ghpo/hint_ratio_mean": sum(ratios) / len(ratios) if ratios else 0.0})


class GroundTruthRows(Transform):
    r"""ViSurf: the reference answer joins each prompt's group as one more response.

    For every group (or, with ``only_failed``, every group whose rewards are all
    ``<= wrong_at``), a row with the group's prompt and the response
    ``encode(record[solution_key]) + <eos>`` is added to the group. It is scored by the step's
    scorer (so a reward function that also checks format applies to it: ViSurf's "align the
    ground truth with the rollouts' format" is the user's choice of ``solution_key``), or gets
    ``reward`` when given. The group's advantage then includes the ground-truth row, whose
    policy-gradient term $\hat A\,\nabla\log\pi_\theta(y^\star)$ is the supervised signal of
    ViSurf's unified objective. ``extras["ground_truth"]`` (bool ``"batch seq"``) marks its tokens,
    so ``>> sft(coef, mask_key="ground_truth")`` adds an explicit SFT term on them. The rows were
    not sampled by the policy: the batch becomes ``on_policy=False`` and the trainer recomputes
    ``logp_old``.

    Warning:
        ViSurf's paper adds three reward-control strategies; its code was not available to us.
        Only the fixed ``reward`` for injected rows (instead of the verifier's) is offered here.

    Args:
        solution_key: record field holding the reference answer.
        reward: reward of the injected rows (None: the scorer's).
        only_failed: inject only into groups that are all wrong.
        wrong_at: a reward at or below it counts as wrong.
    """

    def __init__(self, solution_key: str = "completion", reward: float | None = None, only_failed: bool = False,
                 wrong_at: float = 0.0):
        self.solution_key, self.reward = solution_key, None if reward is None else float(reward)
        self.only_failed, self.wrong_at = bool(only_failed), float(wrong_at)

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "GroundTruthRows")
        if not len(batch):
            return batch
        rollout = batch.rollout
        rows = group_rows(rollout.group_ids.cpu())
        rewards = batch.rewards.cpu()
        targets = [g for g, r in rows.items() if not self.only_failed or bool((rewards[r] <= self.wrong_at).all())]
        if not targets:
            return with_metrics(batch, **{"visurf/injected": 0.0})
        eos = (list(getattr(ctx.engine, "eos_token_ids", ())) or [None])[0]
        records, prompts_, responses = [], [], []
        for g in targets:
            first = rows[g][0]
            record = batch.records[first]
            if self.solution_key not in record:
                raise RlobjInputError(f"GroundTruthRows: record {record.get('prompt_id', record.get('prompt'))!r} has "
                                      f"no {self.solution_key!r} field (the answer to inject); set solution_key")
            ids = ctx.encode(str(record[self.solution_key])) + ([eos] if eos is not None else [])
            records.append(record)
            prompts_.append(rollout.prompt_ids[first][rollout.prompt_mask[first]])
            responses.append(torch.tensor(ids, dtype=torch.long))
        injected = batch_from_rows(prompts_, responses, [torch.zeros(len(r)) for r in responses], targets,
                                   [True] * len(targets), ctx.pad_token_id, device=rollout.response_ids.device)
        extra = Batch(rollout=injected, records=records, on_policy=False,
                      extras={k: torch.zeros((len(targets), *v.shape[1:]), dtype=v.dtype, device=v.device)
                              for k, v in batch.extras.items()})
        extra.scores = ([Score(self.reward, fields={"ground_truth": 1.0}) for _ in targets] if self.reward is not None
                        else ctx.score(extra).scores)
        merged = concat([batch, extra], ctx, "GroundTruthRows", renumber_groups=False)
        flags = torch.zeros(len(merged), dtype=torch.bool, device=merged.rollout.response_mask.device)
        flags[len(batch):] = True
        merged.extras["ground_truth"] = flags[:, None] & merged.rollout.response_mask
        merged = dataclasses.replace(merged, on_policy=False)
        order = group_rows(merged.rollout.group_ids.cpu())
        merged = merged.select([r for g in rows for r in order[g]])
        return with_metrics(merged, **{"visurf/injected": float(len(targets)),
                                       "visurf/injected_reward_mean": float(sum(s.reward for s in extra.scores)
                                                                            / len(targets))})


@register_provider
class GroundTruthMask(Provider):
    """``extras:ground_truth``: attached by :class:`GroundTruthRows`; this default only runs when no
    transform attached it, and stops with an error naming the fix (rather than marking nothing)."""

    provides: ClassVar[tuple[str, ...]] = ("extras:ground_truth",)

    def batch(self, ctx, batch, inputs):
        raise RlobjInputError("extras['ground_truth'] (read by sft(mask_key='ground_truth')) is attached by the "
                              "ground_truth_rows transform: add `transforms: [ground_truth_rows]` to the model")
