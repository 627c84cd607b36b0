r"""Reward shaping: terms that rewrite the sequence rewards before the advantage terms.

All run in the batch stage, read and write ``rewards`` and must come before any advantage
term (the chain refuses the other order). Response lengths are $|y_i| = \sum_t m_{i,t}$.
"""

from typing import Annotated

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative, Range
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import sequence_lengths
from rlobj.terms._common import _rewards, require_groups

__all__ = ["overlong_penalty", "length_penalty", "clip_rewards"]


class _RewardTerm(Term, stage="batch", reads=("rewards", "mask"), writes=("rewards",)):
    pass


class overlong_penalty(_RewardTerm):
    r"""DAPO soft overlong punishment, added to the reward.

    $$R_\text{len}(y) = \begin{cases}0 & |y| \le L_\max - L_\text{buf}\\
      \frac{(L_\max - L_\text{buf}) - |y|}{L_\text{buf}}\cdot f & L_\max - L_\text{buf} < |y| \le L_\max\\
      -f & |y| > L_\max\end{cases}$$

    Yu et al., DAPO, arXiv 2503.14476, Eq. 13; reference $L_\max = 20480$,
    $L_\text{buf} = 4096$, factor $f = 1$.
    """

    max_length: int = 20480
    buffer: Annotated[int, Range(gt=0)] = 4096
    factor: NonNegative = 1.0

    def __post_init__(self):
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


class length_penalty(_RewardTerm, reads=("rewards", "mask", "group_ids")):
    r"""Kimi k1.5 group-relative length reward, weighted by ``coef``.

    $\lambda_i = 0.5 - \frac{|y_i| - \min_g |y|}{\max_g |y| - \min_g |y|}$; correct responses
    ($r_i > 0$) get $+c\lambda_i$, incorrect ones $+c\min(0, \lambda_i)$, so short correct
    answers are favoured and long wrong ones punished. Kimi Team, "Kimi k1.5", arXiv
    2501.12599, Sec. 2.3.3. When all lengths in a group are equal, $\lambda = 0$.
    """

    coef: float = 1.0

    def __call__(self, state: State) -> State:
        rewards = _rewards(state, "length_penalty")
        group_ids = require_groups(state)
        lengths = sequence_lengths(state.mask).to(rewards.dtype)
        lam = torch.zeros_like(rewards)
        for gid in torch.unique(group_ids):
            members = group_ids == gid
            low, high = lengths[members].min(), lengths[members].max()
            if high > low:
                lam[members] = 0.5 - (lengths[members] - low) / (high - low)
        bonus = torch.where(rewards > 0, lam, torch.clamp(lam, max=0.0)) * self.coef
        return state.update(rewards=rewards + bonus).add_metrics(**{"reward/length_bonus": bonus.mean()})


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
