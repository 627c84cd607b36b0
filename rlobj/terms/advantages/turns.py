r"""Turn-level discounted returns as advantages for multi-turn rollouts.

A multi-turn trajectory (:class:`~rlobj.train.multiturn.MultiTurnSampler`) interleaves the
policy's turns with observation tokens; the observations are outside ``mask``.
:class:`turn_returns` reads two extras the sampler records:

* ``extras["turn_ids"]`` (int ``"batch seq"``): the turn index $k(t) \ge 0$ of each generated
  token, $-1$ elsewhere;
* ``extras["turn_rewards"]`` (float ``"batch seq"``): the environment's reward of turn $k$ on
  turn $k$'s last generated token, 0 elsewhere. The reward of turn $k$ is
  $r_{i,k} = \sum_{t:\,k(t)=k} \text{turn\_rewards}_{i,t}$ over valid tokens.

Turn rewards as token rewards (for the ordinary advantage terms) are
:class:`~rlobj.terms.rewards.turns.turn_end_rewards`.
"""

import torch

from rlobj.algebra.contract import Fraction
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import group_index
from rlobj.terms._common import require_groups, with_advantages
from rlobj.terms._turns import _turn_inputs, turn_reward_table

__all__ = ["turn_returns"]


class turn_returns(Term,
                   stage="batch",
                   reads=("group_ids", "mask", "extras:turn_ids", "extras:turn_rewards"),
                   writes=("advantages",)):
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

    gamma: Fraction = 1.0
    baseline: str = "group"

    def __post_init__(self):
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
            group_ids = require_groups(state)
            index, groups = group_index(group_ids)  # arbitrary group ids, as the other group terms
            zeros = torch.zeros((groups, table.shape[1]), dtype=table.dtype, device=table.device)
            sums = zeros.index_add(0, index, returns)
            counts = zeros.index_add(0, index, present.to(table.dtype))
            returns = returns - torch.where(present, sums[index] / counts[index].clamp(min=1), 0.0)
        per_token = returns.gather(1, turn_ids.clamp(min=0))
        per_token = torch.where(turn_ids >= 0, per_token, torch.zeros((), dtype=per_token.dtype))
        return with_advantages(state, per_token=per_token.to(state.logp.dtype))
