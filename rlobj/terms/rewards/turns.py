r"""Turn-end rewards for multi-turn rollouts.

A multi-turn trajectory (:class:`~rlobj.train.multiturn.MultiTurnSampler`) interleaves the
policy's turns with observation tokens; the observations are outside ``mask``.
:class:`turn_end_rewards` reads two extras the sampler records:

* ``extras["turn_ids"]`` (int ``"batch seq"``): the turn index $k(t) \ge 0$ of each generated
  token, $-1$ elsewhere;
* ``extras["turn_rewards"]`` (float ``"batch seq"``): the environment's reward of turn $k$ on
  turn $k$'s last generated token, 0 elsewhere.

and writes them as token rewards. Turn-level discounted returns as advantages are
:class:`~rlobj.terms.advantages.turns.turn_returns`.
"""

import torch

from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.terms._turns import _turn_inputs

__all__ = ["turn_end_rewards"]


class turn_end_rewards(Term,
                       stage="batch",
                       reads=("mask", "rewards", "token_rewards", "extras:turn_ids", "extras:turn_rewards"),
                       writes=("token_rewards", "rewards")):
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

    def __call__(self, state: State) -> State:
        _, turn_rewards = _turn_inputs(state, "turn_end_rewards")
        turn_rewards = turn_rewards.to(state.logp.dtype)
        base = state.token_rewards if state.token_rewards is not None else torch.zeros_like(turn_rewards)
        changes = {"token_rewards": base + turn_rewards}
        if state.rewards is not None:
            changes["rewards"] = state.rewards - turn_rewards.sum(-1).to(state.rewards.dtype)
        return state.update(**changes)
