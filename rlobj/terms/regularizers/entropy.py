r"""Entropy regularisers: a fixed bonus, a coefficient steered toward a target entropy, and the
sampled-token estimate.

The first two read the per-token full-vocabulary entropy $H_{i,t}$ of the current policy,
taken from the ``entropy`` field or computed once, lazily, from the ``vocab`` view. The loss
part ``entropy`` is $-c\,H_{i,t}$ (a bonus: minimising it raises entropy); a negative
coefficient turns it into a penalty.
"""

import torch

from rlobj.algebra.aggregation import seq_mean_token_mean, seq_mean_token_sum, token_mean
from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean

__all__ = ["entropy_bonus", "adaptive_entropy", "sampled_entropy_bonus"]


#: Aggregation modes a part may name for itself (``entropy_bonus(aggregation=...)``).
_PART_AGGREGATIONS = {"token_mean": token_mean, "seq_mean_token_mean": seq_mean_token_mean,
                      "seq_mean_token_sum": seq_mean_token_sum}


class entropy_bonus(Term, reads=("entropy", "mask"), writes=("part:entropy",)):
    r"""$\ell_{i,t} = -c\,H_{i,t}$ with the full-vocab entropy $H_{i,t} = -\sum_v \pi_\theta(v)\log\pi_\theta(v)$.

    The classic PPO entropy bonus (Schulman et al., arXiv 1707.06347, Eq. 9), used by the
    1-shot RLVR recipe (Wang et al., arXiv 2504.20571, coefficient 0.001 in its loss sign
    convention). verl ``entropy_coeff`` (default 0), TRL has none.

    Args:
        coef: $c$; positive = bonus, negative = penalty.
        aggregation: None (default): the chain's aggregation reduces the entropy part, like
            every other part. ``"token_mean"``, ``"seq_mean_token_mean"`` or
            ``"seq_mean_token_sum"``: that mode reduces it instead, with the same global counts
            (RL-PLUS's reference sums its policy loss over the padded length but averages the
            entropy over tokens: ``rl_plus_recipe``).
    """

    coef: float = 0.001
    aggregation: str | None = None

    def __post_init__(self):
        if self.aggregation is not None and self.aggregation not in _PART_AGGREGATIONS:
            raise RlobjInputError(f"entropy_bonus.aggregation: expected None or one of "
                                  f"{sorted(_PART_AGGREGATIONS)}, got {self.aggregation!r}")

    def __call__(self, state: State) -> State:
        entropy = state.token_entropy()
        reducer = None if self.aggregation is None else _PART_AGGREGATIONS[self.aggregation]()
        part = LossPart(-self.coef * entropy, state.mask, aggregation=reducer)
        return state.add_part("entropy", part).add_metrics(
            entropy=masked_mean(entropy.detach(), state.mask)
        )


class adaptive_entropy(Term, reads=("entropy", "mask"), writes=("part:entropy",)):
    r"""Entropy bonus whose coefficient is steered toward a target entropy (stateful).

    Loss part $-c_k H_{i,t}$; after the step the coefficient moves toward the target:
    ``rule="sign"`` (Skywork-OR1, He et al., arXiv 2505.22312, Sec. 4.3, adaptive entropy
    control): $c_{k+1} = c_k + \Delta$ if $\bar H < H^*$ else $c_k - \Delta$;
    ``rule="proportional"``: $c_{k+1} = c_k + \Delta(H^* - \bar H)$; both clipped to
    $[c_\min, c_\max]$. $\bar H$ is the masked token mean of this (micro-)batch. The new
    coefficient is returned as term state, never mutated in place.

    Args:
        target: $H^*$ (Skywork-OR1: 0.2).
        init_coef: $c_0$ (0.0 in Skywork-OR1).
        step: $\Delta$ (Skywork-OR1: 0.005).
        min_coef / max_coef: the clip range of the coefficient (defaults 0 and 0.1).
        rule: ``"sign"`` or ``"proportional"``.
    """

    target: float = 0.2
    init_coef: float = 0.0
    step: NonNegative = 0.005
    min_coef: float = 0.0
    max_coef: float = 0.1
    rule: str = "sign"

    def __post_init__(self):
        if self.rule not in ("sign", "proportional"):
            raise RlobjInputError(f"adaptive_entropy.rule: expected 'sign' or 'proportional', got {self.rule!r}")
        if self.min_coef > self.max_coef:
            raise RlobjInputError(
                f"adaptive_entropy: min_coef {self.min_coef} must be <= max_coef {self.max_coef}"
            )

    def __call__(self, state: State) -> State:
        coef = float(state.own_state(self.init_coef))
        entropy = state.token_entropy()
        mean = float(masked_mean(entropy.detach(), state.mask))
        if self.rule == "sign":
            new = coef + self.step if mean < self.target else coef - self.step
        else:
            new = coef + self.step * (self.target - mean)
        new = min(max(new, self.min_coef), self.max_coef)
        part = LossPart(-coef * entropy, state.mask)
        return (state.add_part("entropy", part).set_own_state(new)
                .add_metrics(entropy=torch.tensor(mean), **{"entropy/coef": coef}))


class sampled_entropy_bonus(Term, reads=("logp", "mask"), writes=("part:entropy_sampled",)):
    r"""$\ell_{i,t} = -c\,\hat H_{i,t}$ with the sampled-token estimator $\hat H_{i,t} = -\log\pi_\theta(y_{i,t})$.

    The entropy term of PAPO (Wang et al., arXiv 2507.06448, double-entropy loss on
    $-\log\pi$) and VPPO (entropy penalty on the sampled tokens); no vocabulary view needed.

    Differences from :class:`entropy_bonus` (full-vocabulary $H$):

    * value: $\mathbb E_{y\sim\pi_\theta}[-\log\pi_\theta(y)] = H$, so $\hat H$ is unbiased
      only in expectation over tokens sampled from the **current** policy (on stale samples
      from $\pi_\text{old}$ it estimates the cross-entropy), and it is noisy per token;
    * gradient: $\nabla(-\log\pi_\theta(y_t))$ has expectation
      $-\sum_v\pi_v\nabla\log\pi_v = 0$ under $y_t\sim\pi_\theta$, whereas
      $\nabla H = -\sum_v \pi_v\log\pi_v\,\nabla\log\pi_v$. Used as a loss it only pushes
      down the probability of the tokens that were sampled (a tested identity).

    Args:
        coef: $c$; positive = bonus (raise $\hat H$), negative = penalty (VPPO's 0.06 penalty
            is ``coef=-0.06``).

    Loss part ``entropy_sampled``; metric ``entropy/sampled``.
    """

    coef: float = 0.001

    def __call__(self, state: State) -> State:
        estimate = -state.logp
        part = LossPart(-self.coef * estimate, state.mask)
        return state.add_part("entropy_sampled", part).add_metrics(
            **{"entropy/sampled": masked_mean(estimate.detach(), state.mask)}
        )
