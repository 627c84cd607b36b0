"""Masked reductions and group statistics, written once and shared by every term.

Conventions: token tensors are ``"batch seq"`` with a boolean ``mask`` (True = counts);
sequence tensors are ``" batch"``; ``group_ids`` holds the prompt id of every sequence.
Padding positions never contribute: values there are replaced with zeros through
``torch.where`` (not multiplied), so NaN or inf in padding cannot leak into results or grads.
"""

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.typecheck import typechecked

__all__ = [
    "masked_sum",
    "masked_mean",
    "masked_var",
    "sequence_lengths",
    "sequence_mean",
    "broadcast_to_tokens",
    "group_index",
    "group_sum",
    "group_count",
    "group_mean",
    "group_std",
    "group_all_equal",
    "leave_one_out_mean",
    "returns_to_go",
]


def _zero_padding(values: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))


@typechecked
def masked_sum(values: Float[Tensor, "*shape"], mask: Bool[Tensor, "*shape"], dim=None) -> Tensor:
    r"""$\sum_j m_j v_j$ over ``dim`` (all dims when None)."""
    zeroed = _zero_padding(values, mask)
    return zeroed.sum() if dim is None else zeroed.sum(dim=dim)


@typechecked
def masked_mean(values: Float[Tensor, "*shape"], mask: Bool[Tensor, "*shape"], dim=None) -> Tensor:
    r"""$\sum_j m_j v_j / \max(1, \sum_j m_j)$ over ``dim`` (all dims when None)."""
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1).to(values.dtype)


@typechecked
def masked_var(
    values: Float[Tensor, "*shape"], mask: Bool[Tensor, "*shape"], unbiased: bool = True
) -> Tensor:
    r"""Variance over all masked entries, with Bessel's correction when ``unbiased``."""
    values = _zero_padding(values, mask)  # before squaring: NaN padding would poison the gradient
    count = mask.sum().to(values.dtype)
    mean = masked_sum(values, mask) / count.clamp(min=1)
    squares = masked_sum((values - mean) ** 2, mask)
    return squares / (count - 1 if unbiased else count).clamp(min=1)


@typechecked
def sequence_lengths(mask: Bool[Tensor, "batch seq"]) -> Float[Tensor, " batch"]:
    """Number of valid tokens per sequence, as float."""
    return mask.sum(dim=-1).float()


@typechecked
def sequence_mean(
    values: Float[Tensor, "batch seq"], mask: Bool[Tensor, "batch seq"]
) -> Float[Tensor, " batch"]:
    r"""Per-sequence token mean $\frac{1}{|y_i|}\sum_t m_{i,t} v_{i,t}$ (0 for empty rows)."""
    return masked_mean(values, mask, dim=-1)


@typechecked
def broadcast_to_tokens(
    per_sequence: Float[Tensor, " batch"], mask: Bool[Tensor, "batch seq"]
) -> Float[Tensor, "batch seq"]:
    """Copy one value per sequence to its valid tokens (zeros on padding)."""
    return _zero_padding(per_sequence[:, None].expand(mask.shape), mask)


@typechecked
def group_index(group_ids: Int[Tensor, " batch"]) -> tuple[Int[Tensor, " batch"], int]:
    """Map arbitrary group ids to ``0..n_groups-1``; returns (index, n_groups)."""
    unique, inverse = torch.unique(group_ids, return_inverse=True)
    return inverse, int(unique.numel())


@typechecked
def group_sum(values: Float[Tensor, " batch"], group_ids: Int[Tensor, " batch"]) -> Tensor:
    r"""$\sum_{j \in g(i)} v_j$, returned per sequence."""
    index, n_groups = group_index(group_ids)
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    return sums.index_add(0, index, values)[index]


@typechecked
def group_count(group_ids: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """$|g(i)|$, the size of each sequence's group, returned per sequence."""
    return group_sum(torch.ones(group_ids.shape, device=group_ids.device), group_ids)


def _group_reference(values: Tensor, group_ids: Tensor) -> Tensor:
    """Each group's largest value, per sequence (no gradient): the shift for exact group means."""
    index, n_groups = group_index(group_ids)
    init = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    return init.scatter_reduce(0, index, values.detach(), "amax", include_self=False)[index]


@typechecked
def group_mean(values: Float[Tensor, " batch"], group_ids: Int[Tensor, " batch"]) -> Tensor:
    r"""$\mathrm{mean}_g(v) = \frac{1}{|g|}\sum_{j\in g} v_j$, returned per sequence.

    Computed as $c_g + \mathrm{mean}_g(v - c_g)$ with $c_g = \max_g v$, so a group of equal
    values has exactly that value as its mean (a plain sum / count is off by an ulp for, e.g.,
    seven rewards of 0.7 in float32, which z-scoring then blows up to a non-zero advantage).
    """
    wide = _wide(values)  # float64 inside: differences and sums of large rewards overflow float32
    reference = _group_reference(wide, group_ids)
    count = group_count(group_ids).to(wide.dtype)
    return (reference + group_sum(wide - reference, group_ids) / count).to(values.dtype)


def _wide(values: Tensor) -> Tensor:
    return values.to(torch.float64) if values.dtype in (torch.float32, torch.float16, torch.bfloat16) else values


@typechecked
def group_std(
    values: Float[Tensor, " batch"], group_ids: Int[Tensor, " batch"], unbiased: bool = True
) -> Tensor:
    r"""Group standard deviation; Bessel-corrected ($n-1$) when ``unbiased`` (torch.std default).

    A group of one member has std 0 with ``unbiased=False`` and 0 (by convention, instead of
    NaN) with ``unbiased=True``; terms that cannot handle singleton groups check for them.
    """
    wide = _wide(values)  # float64 inside: squares of rewards beyond ~1e19 overflow float32
    count = group_count(group_ids).to(wide.dtype)
    centred = wide - group_mean(wide, group_ids)
    squares = group_sum(centred**2, group_ids)
    denominator = (count - 1).clamp(min=1) if unbiased else count
    var = squares / denominator
    # sqrt has an infinite derivative at 0: take 0 as the gradient of an all-equal group's std
    # (else inf * 0 = NaN spreads through group_sum's backward to every input).
    positive = var > 0
    std = torch.where(positive, torch.where(positive, var, torch.ones_like(var)).sqrt(), torch.zeros_like(var))
    return std.to(values.dtype)


@typechecked
def group_all_equal(values: Float[Tensor, " batch"], group_ids: Int[Tensor, " batch"]) -> Bool[Tensor, " batch"]:
    r"""Per sequence: True when every value of its group is equal ($\max_g v = \min_g v$).

    Exact, unlike ``group_std(...) == 0``, which also flags groups of distinct tiny values whose
    squared deviations underflow (e.g. 0 and 1e-24 in float32).
    """
    index, n_groups = group_index(group_ids)
    init = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    high = init.scatter_reduce(0, index, values.detach(), "amax", include_self=False)
    low = init.scatter_reduce(0, index, values.detach(), "amin", include_self=False)
    return (high == low)[index]


@typechecked
def leave_one_out_mean(
    values: Float[Tensor, " batch"], group_ids: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    r"""$\frac{1}{|g|-1}\sum_{j \in g, j \ne i} v_j$ (RLOO baseline); needs groups of 2 or more.

    Singleton groups get 0 (an empty sum). Shifted by the group maximum like :func:`group_mean`,
    so an all-equal group returns exactly its value.
    """
    count = group_count(group_ids).to(values.dtype)
    reference = _group_reference(values, group_ids)  # shift: exact for all-equal groups
    shifted = values - reference
    others = reference + (group_sum(shifted, group_ids) - shifted) / (count - 1).clamp(min=1)
    return torch.where(count > 1, others, torch.zeros((), dtype=values.dtype, device=values.device))


@typechecked
def returns_to_go(
    token_rewards: Float[Tensor, "batch seq"], mask: Bool[Tensor, "batch seq"], gamma: float = 1.0
) -> Float[Tensor, "batch seq"]:
    r"""$G_{i,t} = \sum_{t' \ge t} \gamma^{t'-t} r_{i,t'}$ over valid tokens (0 on padding)."""
    rewards = _zero_padding(token_rewards, mask)
    if gamma == 1.0:
        flipped = rewards.flip(-1).cumsum(-1).flip(-1)
        return _zero_padding(flipped, mask)
    running = torch.zeros_like(rewards[:, 0])
    out = torch.zeros_like(rewards)
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return _zero_padding(out, mask)
