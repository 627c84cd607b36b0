r"""Batch filters: pure functions that decide which prompt groups of a rollout batch to train on.

They act on the batch, not on the loss, so they live in the rollout layer: the trainer calls
them after scoring and refills the batch with fresh prompts where the reference does.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError, check_finite, check_shape

__all__ = ["StdFilterResult", "std_filter"]


@dataclass(frozen=True)
class StdFilterResult:
    """What :func:`std_filter` returns.

    Attributes:
        keep: bool ``" batch"``, True for rows of kept groups.
        ema: the updated EMA of the mean group std (None before ``ema_start``); store it and
            pass it to the next call (it belongs in the checkpoint).
        group_std: float ``" batch"``, each row's group reward std.
    """

    keep: Tensor
    ema: float | None
    group_std: Tensor


def std_filter(rewards: Tensor, group_ids: Tensor, ema: float | None, step: int, beta: float = 0.5,
               rate: float = 0.99, ema_start: int = 6, filter_start: int = 11, unbiased: bool = True) -> StdFilterResult:
    r"""RLPR's std filter: keep a prompt only if its reward std is a large enough share of the running mean.

    $$\bar\sigma_t = \tfrac1{|\mathcal G|}\sum_g \sigma_g,\qquad
      \mathrm{EMA}_t = \begin{cases}\bar\sigma_t & \text{first update (step} = \texttt{ema\_start}\text{, or no EMA yet)}\\
      \rho\,\mathrm{EMA}_{t-1} + (1-\rho)\,\bar\sigma_t & \text{later}\end{cases},\qquad
      \text{keep } g \iff t < \texttt{filter\_start} \ \vee\ \sigma_g \ge \beta\,\mathrm{EMA}_t$$

    Low-std groups carry little learning signal for the (continuous) probability reward of
    :class:`rlobj.terms.reward_models.rlpr_reward`, whose noise the filter removes. Before
    ``ema_start`` the EMA is not tracked; before ``filter_start`` everything is kept. Refill the
    dropped groups with more prompts, as the reference does.

    Yu et al. (OpenBMB), "RLPR", arXiv 2506.18254 (id not re-checked); reference defaults
    (OpenBMB/RLPR ``ray_trainer.py``): $\beta = 0.5$ (Qwen; 0.9 Llama, 1.0 Gemma), $\rho = 0.99$,
    EMA from step 6, filtering from step 11. UNVERIFIED: whether the comparison uses the EMA
    before or after this step's update (after, here, so the first filtered step is defined),
    and Bessel's correction in the group std (``unbiased``; on by default as in torch.std).

    Args:
        rewards: float ``" batch"`` sequence rewards.
        group_ids: int ``" batch"`` prompt ids.
        ema: the previous EMA (None at the start).
        step: the training step $t$ (0-based).
        beta: $\beta \ge 0$; 0 keeps every group.
        rate: $\rho \in [0, 1]$.
        ema_start, filter_start: the steps at which tracking and filtering begin.
        unbiased: Bessel-corrected group std (a group of one has std 0).

    Returns:
        A :class:`StdFilterResult`.

    Example:
        >>> import torch
        >>> # group stds .7071 and 0: EMA = .99 * .4 + .01 * .3536 = .3995; keep std >= .5 * .3995
        >>> result = std_filter(torch.tensor([0., 1., .5, .5]), torch.tensor([0, 0, 1, 1]), ema=0.4, step=20)
        >>> result.keep.tolist(), round(result.ema, 4)
        ([True, True, False, False], 0.3995)
    """
    if not isinstance(rewards, Tensor) or rewards.dim() != 1 or not rewards.is_floating_point():
        raise RlobjInputError(f"rewards: std_filter expected a float tensor of shape (batch,), got "
                              f"{tuple(rewards.shape) if isinstance(rewards, Tensor) else type(rewards).__name__}")
    check_shape("group_ids", group_ids, tuple(rewards.shape), "batch")
    check_finite("rewards", rewards)
    if beta < 0:
        raise RlobjInputError(f"std_filter.beta: expected >= 0, got {beta}")
    if not 0.0 <= rate <= 1.0:
        raise RlobjInputError(f"std_filter.rate: expected in [0, 1], got {rate}")
    unique, index = torch.unique(group_ids, return_inverse=True)
    stds = torch.zeros(unique.numel(), dtype=torch.float64)
    for g in range(unique.numel()):
        values = rewards[index == g].double()
        stds[g] = values.std(unbiased=unbiased) if values.numel() > 1 else 0.0
    mean_std = float(stds.mean())
    if step >= ema_start:
        ema = mean_std if ema is None else rate * ema + (1 - rate) * mean_std
    keep = torch.ones(rewards.shape, dtype=torch.bool, device=rewards.device)
    if step >= filter_start and ema is not None:
        keep = (stds >= beta * ema)[index].to(rewards.device)
    return StdFilterResult(keep=keep, ema=ema, group_std=stds[index].to(rewards.dtype))
