r"""PROF (process-consistency filtering): which responses of each group train the policy.

A batch filter of :mod:`rlobj.rollout.filters` (re-exported there); the ``prof_filter``
transform of :mod:`rlobj.train.transforms` applies it after scoring.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError, check_finite, check_shape
from rlobj.rollout._group_checks import _check_rows, _extremes, _groups_in_order

__all__ = ["ProfResult", "prof_balanced_counts", "prof_filter"]


@dataclass(frozen=True)
class ProfResult:
    """What :func:`prof_filter` returns.

    Attributes:
        keep: bool ``" batch"``, the rows kept for the policy update ($m$ per group).
        consistency: float ``" batch"``, $r^\\text{pro}$.
    """

    keep: Tensor
    consistency: Tensor


def prof_balanced_counts(correct: int, wrong: int, keep: int) -> tuple[int, int]:
    r"""$(k_+, k_-)$ with $k_+ + k_- = m$, $k_+ \le n_+$, $k_- \le n_-$ and $k_+k_-$ maximal.

    Odd $m$ gives the extra slot to the correct side when both sides can take it (UNVERIFIED
    tie rule). Raises when $n_+ + n_- < m$.
    """
    if correct + wrong < keep:
        raise RlobjInputError(f"prof_filter.keep: a group of {correct + wrong} responses cannot keep {keep}")
    k_pos = min(max((keep + 1) // 2, keep - wrong), correct)
    return k_pos, keep - k_pos


def prof_filter(correct: Tensor, step_scores: Tensor, step_mask: Tensor, group_ids: Tensor, keep: int = 4,
                variant: str = "both", lam: float = 0.0, long_steps: int | None = None,
                generator: torch.Generator | None = None) -> ProfResult:
    r"""PROF process-consistency filter: keep the $m$ responses of each group whose process agrees with the outcome.

    With outcome $r^o_i = \pm1$ (``correct``), PRM step scores $r^h_i$ for $h = 1..H_i$:

    $$r^\text{pro}_i = \Big[\frac1{H_i}\sum_h r^h_i - \lambda\,\mathbb 1\big(H_i = 1 \vee H_i \ge H_\lambda\big)\Big]\, r^o_i$$

    Split the group into correct $G_+$ and incorrect $G_-$, choose balanced
    $(k_+, k_-)$ (:func:`prof_balanced_counts`), keep the top $k_+$ of $G_+$ by $r^\text{pro}$
    (highest PRM mean) and, for $G_-$, the top $k_-$ by $r^\text{pro}$ (lowest PRM mean;
    ``variant="both"``, PROF-BOTH) or a random $k_-$ (``"pos"``, PROF-POS / Filter-Correct).
    GRPO then runs on the kept rows. Ties go to the earlier row.

    Ye et al., "Beyond Correctness: Harmonizing Process and Outcome Rewards through RL Training"
    (PROF), arXiv 2509.03403; PRM Qwen2.5-Math-PRM-7B, mean aggregation, $n = 2m$ rollouts.
    UNVERIFIED (code not released; README and a detailed summary): $\lambda$ and $H_\lambda$
    (the step-count penalty is off by default, $\lambda = 0$) and the tie rule for odd $m$.

    Args:
        correct: bool ``" batch"`` outcome.
        step_scores: float ``"batch steps"`` PRM scores (read where ``step_mask``).
        step_mask: bool ``"batch steps"``; every row needs at least one step.
        group_ids: int ``" batch"``; every group needs at least ``keep`` rows.
        keep: $m \ge 1$ per group.
        variant: ``"both"`` or ``"pos"``.
        lam: $\lambda \ge 0$.
        long_steps: $H_\lambda$ (None: only $H_i = 1$ is penalised).
        generator: random source for ``"pos"``.

    Returns:
        A :class:`ProfResult`.

    Example:
        >>> import torch
        >>> # correct PRM means .9, .2, .6 -> keep 2: .9 and .6; wrong means .1, .8, .5 -> keep 2 lowest: .1, .5
        >>> out = prof_filter(torch.tensor([True, True, True, False, False, False]),
        ...                   torch.tensor([[.9], [.2], [.6], [.1], [.8], [.5]]), torch.ones(6, 1, dtype=torch.bool),
        ...                   torch.zeros(6, dtype=torch.long), keep=4)
        >>> out.keep.tolist()
        [True, False, True, True, False, True]
    """
    if not isinstance(correct, Tensor) or correct.dtype != torch.bool or correct.dim() != 1:
        raise RlobjInputError(f"correct: prof_filter expected a 1-D bool tensor, got "
                              f"{correct.dtype if isinstance(correct, Tensor) else type(correct).__name__}")
    batch = correct.shape[0]
    if not isinstance(step_scores, Tensor) or step_scores.dim() != 2 or not step_scores.is_floating_point():
        raise RlobjInputError(f"step_scores: prof_filter expected a float tensor of shape (batch steps), got "
                              f"{tuple(step_scores.shape) if isinstance(step_scores, Tensor) else type(step_scores).__name__}")
    check_shape("step_scores", step_scores, (batch, step_scores.shape[1]), "batch steps")
    check_shape("step_mask", step_mask, tuple(step_scores.shape), "batch steps")
    if step_mask.dtype != torch.bool:
        raise RlobjInputError(f"step_mask: prof_filter expected a bool tensor, got {step_mask.dtype}")
    _check_rows("group_ids", group_ids, "prof_filter", float_values=False)
    check_shape("group_ids", group_ids, (batch,), "batch")
    check_finite("step_scores", step_scores, where=step_mask)
    if bool((~step_mask.any(-1)).any()):
        raise RlobjInputError(f"step_mask: prof_filter needs at least one step per response, rows "
                              f"{(~step_mask.any(-1)).nonzero().flatten().tolist()[:10]} have none")
    if keep < 1:
        raise RlobjInputError(f"prof_filter.keep: expected >= 1, got {keep}")
    if variant not in ("both", "pos"):
        raise RlobjInputError(f"prof_filter.variant: expected 'both' or 'pos', got {variant!r}")
    if lam < 0:
        raise RlobjInputError(f"prof_filter.lam: expected >= 0, got {lam}")
    steps = step_mask.sum(-1)
    mean = torch.where(step_mask, step_scores.double(), torch.zeros((), dtype=torch.float64)).sum(-1) / steps
    odd = steps == 1
    if long_steps is not None:
        odd = odd | (steps >= long_steps)
    consistency = (mean - lam * odd.double()) * (2.0 * correct.double() - 1.0)
    score, right, ids = consistency.tolist(), correct.tolist(), group_ids.tolist()
    chosen: set[int] = set()
    for gid in _groups_in_order(group_ids):
        rows = [i for i, g in enumerate(ids) if g == gid]
        pos = [i for i in rows if right[i]]
        neg = [i for i in rows if not right[i]]
        k_pos, k_neg = prof_balanced_counts(len(pos), len(neg), keep)
        chosen.update(_extremes(pos, score, k_pos, largest=True))
        if variant == "both":
            chosen.update(_extremes(neg, score, k_neg, largest=True))
        else:
            order = torch.randperm(len(neg), generator=generator).tolist()
            chosen.update(neg[j] for j in order[:k_neg])
    kept = torch.tensor([i in chosen for i in range(batch)], dtype=torch.bool, device=correct.device)
    return ProfResult(keep=kept, consistency=consistency.to(step_scores.dtype))
