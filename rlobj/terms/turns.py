r"""Terms for multi-turn rollouts: rewards at turn ends and turn-level discounted returns.

A multi-turn trajectory (:class:`~rlobj.train.multiturn.MultiTurnSampler`) interleaves the
policy's turns with observation tokens; the observations are outside ``mask``. These terms read
two extras the sampler records:

* ``extras["turn_ids"]`` (int ``"batch seq"``): the turn index $k(t) \ge 0$ of each generated
  token, $-1$ elsewhere;
* ``extras["turn_rewards"]`` (float ``"batch seq"``): the environment's reward of turn $k$ on
  turn $k$'s last generated token, 0 elsewhere. The reward of turn $k$ is
  $r_{i,k} = \sum_{t:\,k(t)=k} \text{turn\_rewards}_{i,t}$ over valid tokens.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import group_index
from rlobj.terms._common import check_range, require_extra, require_groups, with_advantages

__all__ = ["turn_end_rewards", "turn_returns"]


def _turn_inputs(state: State, by: str) -> tuple[Tensor, Tensor]:
    shape = tuple(state.mask.shape)
    turn_ids = require_extra(state, "turn_ids", by, shape, "batch seq", "int")
    turn_rewards = require_extra(state, "turn_rewards", by, shape, "batch seq", "float")
    turn_ids = torch.where(state.mask, turn_ids.long(), torch.full((), -1, dtype=torch.long))
    return turn_ids, torch.where(state.mask & (turn_ids >= 0), turn_rewards, torch.zeros((), dtype=turn_rewards.dtype))


def turn_reward_table(turn_ids: Tensor, turn_rewards: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(r, present)``: $r_{i,k}$ (``[batch, K]``, float64) and whether row $i$ has a turn $k$."""
    turns = int(turn_ids.max()) + 1 if turn_ids.numel() and int(turn_ids.max()) >= 0 else 0
    rows = turn_ids.shape[0]
    table = torch.zeros((rows, max(turns, 1)), dtype=torch.float64, device=turn_ids.device)
    present = torch.zeros((rows, max(turns, 1)), dtype=torch.bool, device=turn_ids.device)
    valid = turn_ids >= 0
    row_index = torch.arange(rows, device=turn_ids.device)[:, None].expand_as(turn_ids)
    table.index_put_((row_index[valid], turn_ids[valid]), turn_rewards[valid].double(), accumulate=True)
    present[row_index[valid], turn_ids[valid]] = True
    return table, present


@dataclass(frozen=True)
class turn_returns(Term):
    r"""Per-turn advantages from turn-level discounted returns.

    $$G_{i,k} = \sum_{k' \ge k} \gamma^{\,k'-k}\, r_{i,k'}, \qquad
      A_{i,t} = G_{i,k(t)} - b_{g(i),k(t)}$$

    with $r_{i,k}$ the reward of turn $k$ (module docstring) and the baseline
    $b_{g,k} = \frac{1}{|\{j \in g: k < K_j\}|}\sum_{j \in g,\, k < K_j} G_{j,k}$, the mean
    return of turn $k$ over the responses of the same prompt that reached turn $k$
    (``baseline="group"``; a turn reached by one response only gets baseline $G$ itself,
    hence advantage 0), or $b = 0$ (``baseline="none"``). Every generated token of turn $k$
    gets turn $k$'s advantage; observation tokens and padding get 0. ``gamma`` = 1 and one
    turn give GRPO's mean-centred advantage without the std division (Dr. GRPO).

    Turn-level credit assignment as in multi-turn agent RL (e.g. Zeng et al., "Reinforcing
    Multi-Turn Reasoning in LLM Agents via Turn-Level Credit Assignment", arXiv 2505.11821,
    which adds turn-level rewards to the outcome advantage; here the returns are the textbook
    discounted sums over turns, Sutton and Barto 2018, Sec. 3.3).

    Args:
        gamma: turn discount $\gamma \in [0, 1]$.
        baseline: ``"group"`` or ``"none"``.
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("group_ids", "mask", "extras:turn_ids", "extras:turn_rewards")
    writes: ClassVar[tuple[str, ...]] = ("advantages",)
    gamma: float = 1.0
    baseline: str = "group"

    def __post_init__(self):
        check_range("turn_returns", "gamma", self.gamma, low=0.0, high=1.0)
        if self.baseline not in ("group", "none"):
            raise RlobjInputError(f"turn_returns.baseline: expected 'group' or 'none', got {self.baseline!r}")

    def __call__(self, state: State) -> State:
        turn_ids, turn_rewards = _turn_inputs(state, "turn_returns")
        table, present = turn_reward_table(turn_ids, turn_rewards)
        returns = torch.zeros_like(table)
        running = torch.zeros_like(table[:, 0])
        for k in range(table.shape[1] - 1, -1, -1):
            running = table[:, k] + self.gamma * running
            returns[:, k] = running
        returns = torch.where(present, returns, torch.zeros((), dtype=returns.dtype))
        if self.baseline == "group":
            group_ids = require_groups(state, "turn_returns")
            index, groups = group_index(group_ids)  # arbitrary group ids, as the other group terms
            zeros = torch.zeros((groups, table.shape[1]), dtype=table.dtype, device=table.device)
            sums = zeros.index_add(0, index, returns)
            counts = zeros.index_add(0, index, present.to(table.dtype))
            returns = returns - torch.where(present, sums[index] / counts[index].clamp(min=1), 0.0)
        per_token = returns.gather(1, turn_ids.clamp(min=0))
        per_token = torch.where(turn_ids >= 0, per_token, torch.zeros((), dtype=per_token.dtype))
        return with_advantages(state, per_token=per_token.to(state.logp.dtype))


@dataclass(frozen=True)
class turn_end_rewards(Term):
    r"""Move the turns' rewards from the sequence reward onto the tokens that end each turn.

    $$\text{token\_rewards}_{i,t} \mathrel{+}= \text{turn\_rewards}_{i,t}, \qquad
      r_i \mathrel{-}= \textstyle\sum_k r_{i,k}$$

    so the sequence reward (outcome + sum of token rewards, the convention of the advantage
    terms) is unchanged when the scorer's reward is the episode's return
    (:class:`~rlobj.train.multiturn.EnvironmentScorer`), while token-level estimators see each
    turn's reward where it was earned: ``turn_end_rewards() >> batch_whiten(gamma)`` gives
    REINFORCE++ returns that discount later turns' rewards per token position (observation
    positions count in the exponent; :class:`turn_returns` discounts per turn instead).
    Without ``rewards`` in the state only the token rewards are written.
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("mask", "rewards", "token_rewards", "extras:turn_ids", "extras:turn_rewards")
    writes: ClassVar[tuple[str, ...]] = ("token_rewards", "rewards")

    def __call__(self, state: State) -> State:
        _, turn_rewards = _turn_inputs(state, "turn_end_rewards")
        turn_rewards = turn_rewards.to(state.logp.dtype)
        base = state.token_rewards if state.token_rewards is not None else torch.zeros_like(turn_rewards)
        changes = {"token_rewards": base + turn_rewards}
        if state.rewards is not None:
            changes["rewards"] = state.rewards - turn_rewards.sum(-1).to(state.rewards.dtype)
        return state.update(**changes)
