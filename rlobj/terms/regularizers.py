r"""Entropy regularisers: a fixed bonus and a coefficient steered toward a target entropy.

Both read the per-token full-vocabulary entropy $H_{i,t}$ of the current policy, taken from
the ``entropy`` field or computed once, lazily, from the ``vocab`` view. The loss part
``entropy`` is $-c\,H_{i,t}$ (a bonus: minimising it raises entropy); a negative
coefficient turns it into a penalty.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch

from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import check_range

__all__ = ["entropy_bonus", "adaptive_entropy"]


@dataclass(frozen=True)
class entropy_bonus(Term):
    r"""$\ell_{i,t} = -c\,H_{i,t}$ with the full-vocab entropy $H_{i,t} = -\sum_v \pi_\theta(v)\log\pi_\theta(v)$.

    The classic PPO entropy bonus (Schulman et al., arXiv 1707.06347, Eq. 9), used by the
    1-shot RLVR recipe (Wang et al., arXiv 2504.20571, coefficient 0.001 in its loss sign
    convention). verl ``entropy_coeff`` (default 0), TRL has none.

    Args:
        coef: $c$; positive = bonus, negative = penalty.
    """

    reads: ClassVar[tuple[str, ...]] = ("entropy", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:entropy",)
    coef: float = 0.001

    def __call__(self, state: State) -> State:
        entropy = state.token_entropy()
        return state.add_part("entropy", LossPart(-self.coef * entropy, state.mask)).add_metrics(
            entropy=masked_mean(entropy.detach(), state.mask)
        )


@dataclass(frozen=True)
class adaptive_entropy(Term):
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

    reads: ClassVar[tuple[str, ...]] = ("entropy", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:entropy",)
    target: float = 0.2
    init_coef: float = 0.0
    step: float = 0.005
    min_coef: float = 0.0
    max_coef: float = 0.1
    rule: str = "sign"

    def __post_init__(self):
        check_range("adaptive_entropy", "step", self.step, low=0.0)
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
