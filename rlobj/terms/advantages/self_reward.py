"""LaSeR's self-rewarding advantage (Yang et al., "LaSeR: Reinforcement Learning with Last-Token
Self-Rewarding", arXiv 2510.14943): the GRPO advantage mixed with the policy's own last-token
self-reward. The self-reward itself and its auxiliary MSE loss are in :mod:`rlobj.terms.auxiliary`.
"""

import torch

from rlobj.algebra.contract import Fraction, NonNegative
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.reductions import (
    group_mean,
    group_std,
)
from rlobj.terms._common import check_range, require_groups, sequence_rewards, with_advantages
from rlobj.terms._self_reward import _PROBE, _check_common, _finished, _probe
from rlobj.terms.auxiliary import self_reward_mse, self_reward_score  # noqa: F401 - self_reward_mse: for the doctest

__all__ = ["self_reward_advantage"]


class self_reward_advantage(Term,
                            stage="batch",
                            reads=("rewards", "token_rewards", "group_ids", "mask", f"extras:{_PROBE}"),
                            writes=("advantages",),
                            may_read=("extras:truncated",)):
    r"""LaSeR advantage: the GRPO advantage mixed with a z-scored self-reward.

    $$s_i = \mathrm{clip}(r_{s,i}, 0, 1)\ (0 \text{ if truncated}),\qquad
      A^\text{self}_i = \begin{cases}\frac{s_i - \mathrm{mean}_g s}{\mathrm{std}_g s + \varepsilon} & \mathrm{std}_g s > \tau_f\\
      A^\text{GRPO}_i & \text{otherwise}\end{cases},\qquad A_i = (1-\tau)A^\text{GRPO}_i + \tau A^\text{self}_i$$

    with $A^\text{GRPO}$ the group z-score of the rewards (Bessel std, $\varepsilon = 10^{-6}$).
    Yang et al., arXiv 2510.14943 (self-rewarding advantage integration); reference defaults
    $\tau = 0.1$, $\tau_f = 0.1$. The reference switches the mixing on only after warm-up steps
    (200 + 200); the trainer decides when to swap ``group_zscore`` for this term. No gradient
    flows through the score here (advantages are constants).

    Args:
        tau: $\tau \in [0, 1]$, weight of the self-reward advantage.
        std_floor: $\tau_f$: groups whose self-reward std is at most this fall back to GRPO.
        beta_v, c, temperature: see :func:`self_reward_score`.
        eps: $\varepsilon$ of both z-scores.
        eps_self: the $\varepsilon$ of the self-reward z-score alone (None: ``eps``). The
            reference (``ray_trainer.py``) divides the self-reward by the bare group std and
            the GRPO advantage by std + 1e-6: ``eps=1e-6, eps_self=0.0`` (``laser_recipe``).

    Example:
        >>> from rlobj import grpo, group_zscore
        >>> recipe = grpo.replace(group_zscore, self_reward_advantage(tau=0.1)) >> self_reward_mse(coef=0.1)
    """

    tau: Fraction = 0.1
    std_floor: NonNegative = 0.1
    beta_v: float = 0.1
    c: float = -23.0
    temperature: float = 1.0
    eps: NonNegative = 1e-6
    eps_self: float | None = None

    def __post_init__(self):
        if self.eps_self is not None:
            check_range("self_reward_advantage", "eps_self", self.eps_self, low=0.0)
        _check_common("self_reward_advantage", self.beta_v, self.temperature)

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state).detach()
        group_ids = require_groups(state, minimum=2)
        probe = _probe(state, "self_reward_advantage").detach().to(rewards.dtype)
        score = torch.clamp(self_reward_score(probe, self.beta_v, self.c, self.temperature), 0.0, 1.0)
        score = torch.where(_finished(state), score, torch.zeros_like(score))

        def zscore(values, eps):
            std = group_std(values, group_ids)
            return torch.where(std > 0, (values - group_mean(values, group_ids)) / (std + eps),
                               torch.zeros_like(values)), std

        base, _ = zscore(rewards, self.eps)
        self_adv, self_std = zscore(score, self.eps if self.eps_self is None else self.eps_self)
        self_adv = torch.where(self_std > self.std_floor, self_adv, base)
        mixed = (1.0 - self.tau) * base + self.tau * self_adv
        return with_advantages(state, mixed).add_metrics(
            **{"self_reward/fallback_frac": (self_std <= self.std_floor).float().mean()})
