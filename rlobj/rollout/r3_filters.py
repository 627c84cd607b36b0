r"""DRO's R3-based data filter (Xu et al. 2025, arXiv 2506.13351 v1, section 4.2.2).

DRO filters the training prompts before training and at intervals during it, with the current
policy, in two stages over $N$ sampled reasonings per prompt (the group):

1. **too difficult / beyond knowledge** (:func:`r3_difficulty_keep`): the rank $y_j^{(r)}$ of
   every reference token under the policy after reasoning $i$ (1 = the policy's most likely
   token); per reasoning, the mean of the $\rho\%$ largest ranks (the least confident tokens);
   a prompt is dropped when no reasoning brings that mean within the top-$k$ threshold.
2. **low reasoning variation** (:func:`r3_variation_keep`): per prompt $\max_j \sigma_j$, the
   largest standard deviation over the group of a reference token's log-probability (the
   $\sigma_j$ of R3, :func:`rlobj.train.paper_rewards.r3_rewards`); prompts are ranked by it
   and the lowest-ranked proportion is dropped.

The paper also carries 10% of the previous round's training set forward into each round; that
bookkeeping belongs to the data loop and is not part of these functions. Rounding choices (the
number of tokens in $\rho\%$, the number of prompts in the dropped proportion) are rlobj's: the
paper gives none.
"""

import math

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError, check_finite
from rlobj.rollout._group_checks import _check_rows, _groups_in_order

__all__ = ["r3_difficulty_keep", "r3_variation_keep", "r3_max_sigma"]


def _check_tokens(name: str, values: Tensor, mask: Tensor, group_ids: Tensor, by: str) -> Tensor:
    if not isinstance(values, Tensor) or values.dim() != 2:
        raise RlobjInputError(f"{by}: {name} expected a [batch, L] tensor, got "
                              f"{tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__}")
    if not isinstance(mask, Tensor) or mask.shape != values.shape:
        raise RlobjInputError(f"{by}: mask expected shape {tuple(values.shape)}, got "
                              f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}")
    _check_rows("group_ids", group_ids, by, float_values=False)
    if group_ids.shape[0] != values.shape[0]:
        raise RlobjInputError(f"{by}: group_ids has {group_ids.shape[0]} rows, {name} {values.shape[0]}")
    valid = mask.bool()
    if not bool(valid.any(-1).all()):
        raise RlobjInputError(f"{by}: every row needs at least one reference token in mask")
    check_finite(name, torch.where(valid, values, torch.zeros_like(values)).double())
    return valid


def r3_max_sigma(logp: Tensor, mask: Tensor, group_ids: Tensor) -> dict[int, float]:
    r"""$\max_j \sigma_j$ per group: the largest population standard deviation, over the group's
    rows, of one reference token's log-probability (rows of a group share the reference mask)."""
    valid = _check_tokens("logp", logp, mask, group_ids, "r3_max_sigma")
    out = {}
    for group in _groups_in_order(group_ids):
        rows = (group_ids == group).nonzero().flatten()
        if not bool((valid[rows] == valid[rows[0]]).all()):
            raise RlobjInputError("r3_max_sigma: rows of one group must share the reference tokens (equal masks)")
        sigma = logp[rows].std(dim=0, unbiased=False) * valid[rows[0]]
        out[group] = float(sigma.max())
    return out


def r3_variation_keep(logp: Tensor, mask: Tensor, group_ids: Tensor, drop_fraction: float) -> Tensor:
    r"""DRO's second filter stage: drop the prompts with the least reasoning-induced variation.

    Groups are ranked by $\max_j \sigma_j$ (:func:`r3_max_sigma`) and the
    $\lfloor$ ``drop_fraction`` $\cdot$ #groups $\rfloor$ lowest are dropped (ties: the later
    group is dropped first).

    Args:
        logp: ``[batch, L]`` reference-token log-probs after each row's reasoning.
        mask: ``[batch, L]`` True on reference tokens.
        group_ids: ``[batch]`` prompt of each row.
        drop_fraction: in $[0, 1)$.

    Returns:
        bool ``[batch]``: True for rows of kept prompts.

    Example:
        >>> import torch
        >>> logp = torch.tensor([[-1., -1.], [-1., -3.], [-2., -2.], [-2., -2.5]])
        >>> r3_variation_keep(logp, torch.ones(4, 2, dtype=torch.bool), torch.tensor([0, 0, 1, 1]), 0.5).tolist()
        [True, True, False, False]
    """
    if not 0.0 <= float(drop_fraction) < 1.0:
        raise RlobjInputError(f"r3_variation_keep.drop_fraction: expected in [0, 1), got {drop_fraction}")
    scores = r3_max_sigma(logp, mask, group_ids)
    groups = list(scores)
    order = sorted(range(len(groups)), key=lambda i: (scores[groups[i]], -i))  # lowest first, later first on ties
    dropped = set(order[:math.floor(drop_fraction * len(groups))])
    kept = torch.tensor([g for i, g in enumerate(groups) if i not in dropped], dtype=group_ids.dtype)
    return torch.isin(group_ids, kept)


def r3_difficulty_keep(ranks: Tensor, mask: Tensor, group_ids: Tensor, rho: float, top_k: float) -> Tensor:
    r"""DRO's first filter stage: drop prompts whose reference no reasoning makes predictable.

    Per row $i$: $a_i$ = the mean of the $\lceil \rho L \rceil$ largest ranks among the row's
    $L$ reference tokens (``rho`` is a fraction, the paper's $\rho\%$). A prompt is kept when
    $\min_i a_i \le$ ``top_k``.

    Args:
        ranks: ``[batch, L]`` rank of each reference token in the policy's next-token
            distribution after the row's reasoning (1 = most likely).
        mask: ``[batch, L]`` True on reference tokens.
        group_ids: ``[batch]`` prompt of each row.
        rho: fraction of the least-confident tokens averaged, in $(0, 1]$.
        top_k: threshold on the averaged rank, $\ge 1$.

    Returns:
        bool ``[batch]``: True for rows of kept prompts.

    Example:
        >>> import torch
        >>> ranks = torch.tensor([[1, 9], [1, 3], [7, 8], [5, 9]])
        >>> r3_difficulty_keep(ranks, torch.ones(4, 2, dtype=torch.bool), torch.tensor([0, 0, 1, 1]),
        ...                    rho=0.5, top_k=4).tolist()
        [True, True, False, False]
    """
    if not 0.0 < float(rho) <= 1.0:
        raise RlobjInputError(f"r3_difficulty_keep.rho: expected in (0, 1], got {rho}")
    if not float(top_k) >= 1.0:
        raise RlobjInputError(f"r3_difficulty_keep.top_k: expected >= 1, got {top_k}")
    valid = _check_tokens("ranks", ranks, mask, group_ids, "r3_difficulty_keep")
    if bool((torch.where(valid, ranks, torch.ones_like(ranks)) < 1).any()):
        raise RlobjInputError("r3_difficulty_keep.ranks: ranks start at 1")
    hardest = []
    for row in range(ranks.shape[0]):
        values = ranks[row][valid[row]].double()
        count = math.ceil(float(rho) * values.numel())
        hardest.append(float(values.sort(descending=True).values[:count].mean()))
    hardest_t = torch.tensor(hardest, dtype=torch.float64)
    keep = torch.zeros(ranks.shape[0], dtype=torch.bool)
    for group in _groups_in_order(group_ids):
        rows = group_ids == group
        keep[rows] = bool(hardest_t[rows].min() <= float(top_k))
    return keep
