r"""DRO's R3 data filter as a batch transform (Xu et al. 2025, arXiv 2506.13351 v1, section 4.2.2).

DRO filters its training prompts in rounds, with the current policy and $N$ sampled reasonings
per prompt, in two stages (:mod:`rlobj.rollout.r3_filters`): drop the prompts whose reference no
reasoning makes predictable (token ranks), then the lowest-ranked share of prompts by their
largest per-token spread $\max_j \sigma_j$. In rlobj the rollout group *is* the $N$ sampled
reasonings of a prompt and :class:`~rlobj.train.paper_rewards.R3Reward` has already computed the
reference tokens' log-probs and ranks under the current policy, so :class:`R3Filter` applies
both stages to each scored batch and drops the filtered prompts' groups before the update.

What differs from the paper: the filter acts on the step's prompts (an online filter, like
DAPO's dynamic sampling without refill), not on a sweep of the whole dataset before each round;
the stage-2 share is taken among the step's prompts that passed stage 1; and the paper's carry-
over of 10% of the previous round's training set has no counterpart (there are no rounds).
"""

from __future__ import annotations

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.r3_filters import r3_difficulty_keep, r3_variation_keep
from rlobj.train.stages import Batch, StepContext, Transform
from rlobj.train.transforms._checks import check_float, check_scored
from rlobj.train.transforms._common import group_rows, keep_rows, with_metrics

__all__ = ["R3Filter"]


def _field_matrix(batch: Batch, rows: list[int], name: str, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``[len(rows), L]`` values of a per-token score field and the mask of present tokens."""
    values = []
    for b in rows:
        value = batch.scores[b].fields.get(name)
        if not isinstance(value, (list, tuple)) or not value:
            raise RlobjInputError(f"R3Filter: row {b} has no score field {name!r} (a non-empty list); the scorer "
                                  "must be rlobj.train.paper_rewards.R3Reward")
        values.append(list(value))
    width = max(len(v) for v in values)
    out = torch.zeros(len(values), width, dtype=dtype)
    mask = torch.zeros(len(values), width, dtype=torch.bool)
    for i, v in enumerate(values):
        out[i, :len(v)] = torch.tensor(v, dtype=dtype)
        mask[i, :len(v)] = True
    return out, mask


class R3Filter(Transform):
    r"""Keep the groups that pass DRO's two R3 filter stages (rows of other groups are dropped).

    1. **Too difficult** (``top_k`` set): per row the mean of the $\lceil\rho L\rceil$ largest
       reference-token ranks; a group is kept when its best row's mean is $\le$ ``top_k``
       (:func:`~rlobj.rollout.r3_filters.r3_difficulty_keep`).
    2. **Low reasoning variation** (``drop_fraction > 0``): of the groups left, the
       $\lfloor$ ``drop_fraction`` $\cdot$ #groups $\rfloor$ with the smallest $\max_j \sigma_j$
       are dropped (:func:`~rlobj.rollout.r3_filters.r3_variation_keep`).

    Reads the score fields ``r3_ref_ranks`` and ``r3_ref_logp`` of
    :class:`~rlobj.train.paper_rewards.R3Reward` (any scorer giving them works). The paper gives
    no values for $\rho$, $k$ or the dropped share; the defaults here are rlobj's.

    Args:
        top_k: rank threshold of stage 1 (>= 1); None skips stage 1.
        rho: share of the least-confident reference tokens averaged in stage 1, in (0, 1].
        drop_fraction: share of groups dropped in stage 2, in [0, 1).

    Metrics: ``r3_filter/kept``, ``r3_filter/dropped_difficult``, ``r3_filter/dropped_low_variation``
    (groups).

    Example (YAML, ``model.transforms``)::

        transforms:
          - class_path: rlobj.train.transforms.r3.R3Filter
            init_args: {top_k: 20, rho: 0.1, drop_fraction: 0.25}
    """

    def __init__(self, top_k: float | None = None, rho: float = 0.1, drop_fraction: float = 0.0):
        if top_k is not None:
            check_float("R3Filter", "top_k", top_k, low=1.0)
        check_float("R3Filter", "rho", rho, low=0.0, high=1.0)
        if rho == 0:
            raise RlobjInputError("R3Filter.rho: expected a number in (0, 1], got 0")
        check_float("R3Filter", "drop_fraction", drop_fraction, low=0.0, high=1.0)
        if drop_fraction == 1.0:
            raise RlobjInputError("R3Filter.drop_fraction: expected a number in [0, 1), got 1.0 (drops every group)")
        if top_k is None and drop_fraction == 0.0:
            raise RlobjInputError("R3Filter: give top_k (stage 1) or drop_fraction > 0 (stage 2); as set it keeps "
                                  "every group")
        self.top_k, self.rho, self.drop_fraction = top_k, float(rho), float(drop_fraction)

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "R3Filter")
        if not len(batch):
            return batch
        group_ids = batch.rollout.group_ids.cpu()
        rows = list(range(len(batch)))
        keep = torch.ones(len(batch), dtype=torch.bool)
        if self.top_k is not None:
            ranks, mask = _field_matrix(batch, rows, "r3_ref_ranks", torch.long)
            keep = r3_difficulty_keep(ranks, mask, group_ids, rho=self.rho, top_k=self.top_k)
        after_difficulty = len(group_rows(group_ids[keep])) if bool(keep.any()) else 0
        if self.drop_fraction > 0 and bool(keep.any()):
            left = keep.nonzero().flatten().tolist()
            logp, mask = _field_matrix(batch, left, "r3_ref_logp", torch.float64)
            keep[left] = r3_variation_keep(logp, mask, group_ids[left], self.drop_fraction)
        groups = len(group_rows(group_ids))
        kept = len(group_rows(group_ids[keep])) if bool(keep.any()) else 0
        return with_metrics(keep_rows(batch, keep.to(batch.rollout.group_ids.device)), **{
            "r3_filter/kept": kept, "r3_filter/dropped_difficult": groups - after_difficulty,
            "r3_filter/dropped_low_variation": after_difficulty - kept})

    def __repr__(self) -> str:
        return f"R3Filter(top_k={self.top_k}, rho={self.rho}, drop_fraction={self.drop_fraction})"
