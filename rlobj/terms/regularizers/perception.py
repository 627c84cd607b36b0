"""PAPO's double entropy loss (Wang et al., "Perception-Aware Policy Optimization for Multimodal
Reasoning", arXiv 2507.06448): sampled-token entropy on the normal and the perturbed branch,
paired with the perception KL (:class:`~rlobj.terms.divergences.perception.perception_kl`).
"""

from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.reductions import masked_mean
from rlobj.terms._perception import _perturbed_logp

__all__ = ["double_entropy"]


class double_entropy(Term,
                     reads=("logp", "mask", "extras:logp_perturbed"),
                     writes=("part:entropy_double",)):
    r"""PAPO's double entropy loss: sampled-token entropy **minimisation** on both branches.

    $$ \ell_{i,t} = \eta_1\,\hat H^\text{orig}_{i,t} + \eta_2\,\hat H^\text{mask}_{i,t}, \qquad
       \hat H^\text{orig}_{i,t} = -\log\pi_\theta(y_{i,t}), \quad
       \hat H^\text{mask}_{i,t} = -\log\tilde\pi(y_{i,t}) $$
    (the sampled-token entropy estimators, spec P7c). It counteracts the collapse mode where the
    policy maximises :class:`perception_kl` by blowing up its entropy. With the perturbed branch
    detached (the default, as in PAPO) the $\eta_2$ part is a constant: it shifts the loss but has
    zero gradient. The gradient of the $\eta_1$ part raises the log-probs of the sampled tokens.

    Args:
        eta_orig: $\eta_1 \ge 0$: 0.03 (PAPO config default, DAPO scripts), 0.05 (GRPO 7B script).
        eta_perturbed: $\eta_2 \ge 0$: same defaults.
        perturbed_grad: let gradients reach ``extras["logp_perturbed"]``. Default False.

    Loss part ``entropy_double``; metrics ``perception/entropy_orig``,
    ``perception/entropy_perturbed`` (token means of the two estimates).

    References:
        Wang et al., PAPO, arXiv 2507.06448, double entropy loss (spec §6.2). If $\gamma$ of
        :class:`perception_kl` is annealed, PAPO scales $\eta_1, \eta_2$ by the same ratio.
    """

    eta_orig: NonNegative = 0.03
    eta_perturbed: NonNegative = 0.03
    perturbed_grad: bool = False

    def __call__(self, state: State) -> State:
        entropy_orig = -state.logp
        entropy_perturbed = -_perturbed_logp(state, "double_entropy", keep_grad=self.perturbed_grad)
        loss = self.eta_orig * entropy_orig + self.eta_perturbed * entropy_perturbed
        return state.add_part("entropy_double", LossPart(loss, state.mask)).add_metrics(
            **{"perception/entropy_orig": masked_mean(entropy_orig.detach(), state.mask),
               "perception/entropy_perturbed": masked_mean(entropy_perturbed.detach(), state.mask)}
        )
