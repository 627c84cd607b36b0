r"""Reward shaping: terms that rewrite the sequence rewards before the advantage terms.

All run in the batch stage, read and write ``rewards`` and must come before any advantage
term (the chain refuses the other order). Response lengths are $|y_i| = \sum_t m_{i,t}$.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import group_all_equal, sequence_lengths
from rlobj.terms._common import check_range, require_groups

__all__ = [
    "overlong_penalty",
    "length_penalty",
    "clip_rewards",
    "zero_variance_groups",
    "drop_zero_variance_groups",
]


class _RewardTerm(Term):
    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("rewards", "mask")
    writes: ClassVar[tuple[str, ...]] = ("rewards",)


def _rewards(state: State, by: str) -> Tensor:
    return state.require("rewards", by)


@dataclass(frozen=True)
class overlong_penalty(_RewardTerm):
    r"""DAPO soft overlong punishment, added to the reward.

    $$R_\text{len}(y) = \begin{cases}0 & |y| \le L_\max - L_\text{buf}\\
      \frac{(L_\max - L_\text{buf}) - |y|}{L_\text{buf}}\cdot f & L_\max - L_\text{buf} < |y| \le L_\max\\
      -f & |y| > L_\max\end{cases}$$

    Yu et al., DAPO, arXiv 2503.14476, Eq. 13; reference $L_\max = 20480$,
    $L_\text{buf} = 4096$, factor $f = 1$.
    """

    max_length: int = 20480
    buffer: int = 4096
    factor: float = 1.0

    def __post_init__(self):
        check_range("overlong_penalty", "buffer", self.buffer, low=0, low_open=True)
        check_range("overlong_penalty", "factor", self.factor, low=0.0)
        if self.buffer > self.max_length:
            raise RlobjInputError(
                f"overlong_penalty: buffer {self.buffer} must be <= max_length {self.max_length}"
            )

    def penalty(self, lengths: Tensor) -> Tensor:
        expected = self.max_length - self.buffer
        return torch.clamp((expected - lengths) / self.buffer * self.factor, -self.factor, 0.0)

    def __call__(self, state: State) -> State:
        rewards = _rewards(state, "overlong_penalty")
        penalty = self.penalty(sequence_lengths(state.mask).to(rewards.dtype))
        return state.update(rewards=rewards + penalty).add_metrics(
            **{"reward/overlong_penalty": penalty.mean()}
        )


@dataclass(frozen=True)
class length_penalty(_RewardTerm):
    r"""Kimi k1.5 group-relative length reward, weighted by ``coef``.

    $\lambda_i = 0.5 - \frac{|y_i| - \min_g |y|}{\max_g |y| - \min_g |y|}$; correct responses
    ($r_i > 0$) get $+c\lambda_i$, incorrect ones $+c\min(0, \lambda_i)$, so short correct
    answers are favoured and long wrong ones punished. Kimi Team, "Kimi k1.5", arXiv
    2501.12599, Sec. 2.3.3. When all lengths in a group are equal, $\lambda = 0$.
    """

    reads: ClassVar[tuple[str, ...]] = ("rewards", "mask", "group_ids")
    coef: float = 1.0

    def __call__(self, state: State) -> State:
        rewards = _rewards(state, "length_penalty")
        group_ids = require_groups(state, "length_penalty")
        lengths = sequence_lengths(state.mask).to(rewards.dtype)
        lam = torch.zeros_like(rewards)
        for gid in torch.unique(group_ids):
            members = group_ids == gid
            low, high = lengths[members].min(), lengths[members].max()
            if high > low:
                lam[members] = 0.5 - (lengths[members] - low) / (high - low)
        bonus = torch.where(rewards > 0, lam, torch.clamp(lam, max=0.0)) * self.coef
        return state.update(rewards=rewards + bonus).add_metrics(**{"reward/length_bonus": bonus.mean()})


@dataclass(frozen=True)
class clip_rewards(_RewardTerm):
    r"""$r_i \leftarrow \mathrm{clip}(r_i, \text{low}, \text{high})$ (OpenRLHF ``reward_clip_range``)."""

    low: float = -10.0
    high: float = 10.0

    def __post_init__(self):
        if self.low > self.high:
            raise RlobjInputError(f"clip_rewards: low {self.low} must be <= high {self.high}")

    def __call__(self, state: State) -> State:
        rewards = _rewards(state, "clip_rewards")
        clipped = torch.clamp(rewards, self.low, self.high)
        return state.update(rewards=clipped).add_metrics(
            **{"reward/clipped_frac": (clipped != rewards).float().mean()}
        )


def zero_variance_groups(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """Per sequence: True when every reward of its group is equal (the group gives no signal).

    DAPO's dynamic sampling (arXiv 2503.14476, Eq. 11) discards such groups and samples more.
    """
    return group_all_equal(rewards, group_ids)


@dataclass(frozen=True)
class drop_zero_variance_groups(Term):
    r"""Remove groups whose rewards (or accuracies) are all equal from the loss (and from its
    normaliser).

    The in-objective half of DAPO's dynamic sampling (arXiv 2503.14476, Eq. 11: keep groups
    with $0 < |\{o_i \text{ correct}\}| < G$). Nothing is resampled here: in the trainer the
    ``dynamic_sampling`` transform (``transforms: [{dynamic_sampling: {max_rounds: 3}}]``,
    :mod:`rlobj.train.transforms`) drops flat groups and resamples the step's own prompts (DAPO
    draws new prompts instead). The rows' masks become all False, so they count neither
    as tokens nor as sequences; ``extras["dropped"]`` records them. Reports the dropped
    fraction as ``groups/zero_variance_frac``.

    Args:
        on: ``"rewards"`` (default): test the rewards as this term sees them (after any reward
            shaping before it); ``"accuracy"``: test ``extras["accuracy"]`` (``" batch"``), the
            correctness of each response, which DAPO filters on (verl ``filter_groups.metric:
            acc``): a group of correct answers stays flat even when a length penalty made its
            rewards differ. In the trainer the ``Accuracy`` provider gives the scorer's
            ``accuracy`` field, or else the scorer's reward before any term shaped it.
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("rewards", "group_ids", "mask")
    writes: ClassVar[tuple[str, ...]] = ("mask",)
    may_read: ClassVar[tuple[str, ...]] = ("extras:dropped",)
    on: str = "rewards"

    def __post_init__(self):
        if self.on not in ("rewards", "accuracy"):
            raise RlobjInputError(f"drop_zero_variance_groups.on: expected 'rewards' or 'accuracy', got {self.on!r}")

    def slots_read(self) -> frozenset[str]:
        if self.on == "accuracy":
            return frozenset({"extras:accuracy", "group_ids", "mask"})
        return frozenset(self.reads)

    def __call__(self, state: State) -> State:
        group_ids = require_groups(state, "drop_zero_variance_groups")
        if self.on == "accuracy":
            values = state.require("extras:accuracy", "drop_zero_variance_groups")
            if values.shape != group_ids.shape:
                raise RlobjInputError(f"extras['accuracy']: expected shape {tuple(group_ids.shape)} (one value per "
                                      f"response), got {tuple(values.shape)}")
        else:
            values = _rewards(state, "drop_zero_variance_groups")
        flat = zero_variance_groups(values, group_ids)
        mask = state.mask & ~flat[:, None]
        dropped = flat | state.extras.get("dropped", torch.zeros_like(flat))
        return state.update(mask=mask, extras={**state.extras, "dropped": dropped}).add_metrics(
            **{"groups/zero_variance_frac": flat.float().mean()})
