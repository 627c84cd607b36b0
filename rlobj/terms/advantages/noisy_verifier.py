r"""Forward correction (PGFC) of a noisy binary verifier: advantages that point the right way
under known false-negative rates (Cai, Wang, Liu, Liu, Niu, Sugiyama, "Reinforcement Learning
with Verifiable yet Noisy Rewards under Imperfect Verifiers", arXiv 2510.00915). The channel
model, the backward correction of the reward and the online estimate of $\rho_1$ are in
:mod:`rlobj.terms.rewards.noisy_verifier`.
"""

from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.terms._common import with_advantages
from rlobj.terms._noisy_verifier import _RHO_KEY, _binary_rewards, _check_rates, _rho1

__all__ = ["forward_correction"]


class forward_correction(Term, stage="batch", reads=("rewards", "mask"), writes=("advantages",)):
    r"""Direction-correct advantages from a noisy binary verifier (PGFC); needs only $\rho_1$.

    $$w_i = \tilde R_i - (1 - \rho_1) = \begin{cases}\rho_1 & \tilde R_i = 1\\ \rho_1 - 1 & \tilde R_i = 0\end{cases},
      \qquad A_i = w_i / s$$

    $\mathbb E[w \mid R^*=1] = 0$ and $\mathbb E[w \mid R^*=0] = -(1-\rho_0-\rho_1)$, so
    $\mathbb E[w\,\nabla\log\pi] = (1-\rho_0-\rho_1)\nabla J$: the expected update points along
    the clean gradient. Cai et al., arXiv 2510.00915, Sec. 4.2 and App. B (GRPO plumbing: no
    centring within the current group; $s \in \{1, 1-\rho_1, 1-\rho_0-\rho_1\}$).

    Args:
        rho1: $\rho_1$ in $[0, 1)$, or ``None`` for ``extras["noise_rho1"]`` (online estimate).
        scale: $s$: ``"one"`` (default; UNVERIFIED which one the paper's runs use),
            ``"one_minus_rho1"`` or ``"one_minus_rho0_rho1"`` (needs ``rho0``).
        rho0: $\rho_0$, used only by ``scale="one_minus_rho0_rho1"``.

    Example:
        >>> from rlobj import grpo, group_zscore
        >>> recipe = grpo.replace(group_zscore, forward_correction(rho1=0.2))
    """

    rho1: float | None = 0.2
    scale: str = "one"
    rho0: float = 0.0

    def __post_init__(self):
        _check_rates("forward_correction", self.rho0, self.rho1)
        if self.scale not in ("one", "one_minus_rho1", "one_minus_rho0_rho1"):
            raise RlobjInputError(
                f"forward_correction.scale: expected 'one', 'one_minus_rho1' or 'one_minus_rho0_rho1', "
                f"got {self.scale!r}"
            )

    def slots_read(self) -> frozenset[str]:
        return frozenset(self.reads + (() if self.rho1 is not None else (f"extras:{_RHO_KEY}",)))

    def __call__(self, state: State) -> State:
        noisy = _binary_rewards(state, "forward_correction")
        rho1 = _rho1(state, self.rho1, "forward_correction")
        weights = noisy - (1.0 - rho1)
        scale = {"one": 1.0, "one_minus_rho1": 1.0 - rho1, "one_minus_rho0_rho1": 1.0 - self.rho0 - rho1}[self.scale]
        return with_advantages(state, weights / scale)
