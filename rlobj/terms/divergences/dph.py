"""DPH-RL's generator divergences on stored samples of the initial policy (Li et al., "The Choice
of Divergence: A Neglected Key to Mitigating Diversity Collapse in RLVR", arXiv 2509.07430).
"""

import math

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import masked_mean
from rlobj.terms.divergences.sampled_kl import kl_estimate

__all__ = ["dph_divergence"]


DPH_FORMS = ("forward", "js", "alpha")


class dph_divergence(Term,
                     reads=("logp", "mask", "extras:logp_init", "extras:dph_rows"),
                     writes=("part:dph",)):
    r"""DPH-RL's generator divergences on stored samples of the initial policy.

    On the rows of the "perfect" split $D_\text{pef}$ (prompts the initial policy solved
    $k/k$ times; ``extras["dph_rows"]``, ``" batch"`` bool), whose responses $y \sim \pi_0$ were
    sampled once before training with their token log-probs $\log\pi_0(y_t)$
    (``extras["logp_init"]``), with $u_{i,t} = \pi_\theta(y_{i,t}) / \pi_0(y_{i,t})$:

    $$ \ell_{i,t} = \eta\, d(u_{i,t}), \qquad d(u) = \begin{cases}
       u - \log u - 1 & \text{forward: } \mathbb E_{\pi_0}[d] = \mathrm{KL}(\pi_0\Vert\pi_\theta)\\
       u\log u - (u+1)\log\frac{u+1}{2} & \text{js: } \mathbb E_{\pi_0}[d] = 2\,\mathrm{JS}(\pi_\theta,\pi_0)\\
       \frac{u^{1-a} - (1-a)u - a}{a(a-1)} & \text{alpha}
       \end{cases} $$

    Only the divergence acts on those rows (no online reference model); rows outside
    $D_\text{pef}$ never receive it. Li et al., "The Choice of Divergence: A Neglected Key to
    Mitigating Diversity Collapse in RLVR", arXiv 2509.07430 (ICLR 2026), Sec. 3 and reference
    code ``dp_actor.py`` (data ``type == 2``). As in the code, the forward form clamps
    $\log u$ to $[-20, 20]$ and its value to $[-10, 10]$; the JS form is not clamped; the
    alpha form clamps $\log u$ to $[-20, 20]$ (overflow guard, not in the reference).

    Args:
        form: ``"forward"``, ``"js"`` or ``"alpha"``.
        eta: $\eta$ (reference ranges: forward 0.01-0.05, js 0.05-0.2, alpha 0.01-0.05;
            scripts default 0.01).
        alpha: $a$ of the alpha form (default 0.2).

    Loss part ``dph`` over the response tokens of the marked rows (``"global"`` normaliser:
    with homogeneous micro-batches, as in the reference, a $D_\text{pef}$ micro-batch gets
    the token mean of $\eta d$). Give the $D_\text{pef}$ rows advantage 0 (or mask them out of
    the policy part): in the reference they receive no policy gradient.
    """

    form: str = "forward"
    eta: NonNegative = 0.01
    alpha: float = 0.2

    def __post_init__(self):
        if self.form not in DPH_FORMS:
            raise RlobjInputError(f"dph_divergence.form: expected one of {DPH_FORMS}, got {self.form!r}")
        if self.form == "alpha" and (not math.isfinite(self.alpha) or self.alpha in (0.0, 1.0)):
            raise RlobjInputError(f"dph_divergence.alpha: expected a finite value not 0 or 1, got {self.alpha}")

    def per_token(self, logp: Tensor, logp_init: Tensor) -> Tensor:
        """$d(u)$ of the table above, elementwise (no masking)."""
        if self.form == "forward":
            return kl_estimate(logp_init, logp, "k3")  # e^{log u} - log u - 1, verl's clamps
        log_u = logp - logp_init
        if self.form == "js":
            u = log_u.exp()
            return u * log_u - (u + 1.0) * (torch.nn.functional.softplus(log_u) - math.log(2.0))
        log_u = torch.clamp(log_u, -20.0, 20.0)
        a = self.alpha
        return ((1.0 - a) * log_u).exp().sub((1.0 - a) * log_u.exp()).sub(a) / (a * (a - 1.0))

    def __call__(self, state: State) -> State:
        logp_init = state.require("extras:logp_init")
        rows = state.require("extras:dph_rows")
        check_shape("extras['logp_init']", logp_init, tuple(state.mask.shape), "batch seq")
        check_shape("extras['dph_rows']", rows, (state.batch_size,), "batch")
        if rows.dtype != torch.bool:
            raise RlobjInputError(f"extras['dph_rows']: expected a bool tensor, got {rows.dtype}")
        mask = state.mask & rows[:, None]
        logp_init = torch.where(mask, logp_init.detach(), torch.zeros((), dtype=logp_init.dtype))
        logp = torch.where(mask, state.logp, torch.zeros((), dtype=state.logp.dtype))
        value = torch.where(mask, self.per_token(logp, logp_init), torch.zeros((), dtype=logp.dtype))
        return state.add_part("dph", LossPart(self.eta * value, mask)).add_metrics(
            **{f"dph/{self.form}": masked_mean(value.detach(), mask),
               "dph/rows_frac": rows.float().mean()}
        )
