"""VOGUE's visual-uncertainty advantage bonus (Liu et al., "Guiding Exploration with Visual
Uncertainty Improves Multimodal Reasoning", arXiv 2510.01444).

It compares the policy on the normal context (``vocab``) with the policy on a perturbed one
(``extras["vocab_perturbed"]``, a :class:`~rlobj.ops.vocab.VocabView` computed by
:func:`rlobj.rollout.perception.perception_forward`) through
:func:`~rlobj.terms.divergences.perception.symmetric_kl`, and adds a bonus to the advantages.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import Positive
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import check_range
from rlobj.terms._views import current_view, other_view
from rlobj.terms.divergences.perception import symmetric_kl

__all__ = ["vogue_bonus"]


VOGUE_ROWS = ("noisy_branch", "all")


class vogue_bonus(Term):
    r"""VOGUE's visual-uncertainty advantage bonus on noisy-branch rollouts (**unverified reading**).

    $$ u_{i,t} = \tfrac12\big[\mathrm{KL}(\pi(\cdot\mid s_t, I)\Vert\pi(\cdot\mid s_t,\tilde I))
               + \mathrm{KL}(\pi(\cdot\mid s_t,\tilde I)\Vert\pi(\cdot\mid s_t, I))\big], \qquad
       U_i = \frac{1}{|o_i|}\sum_t u_{i,t} $$
    $$ \tilde A_{i,t} = A_{i,t} + n_i\Big[\min(\lambda_u U_i,\; c_u\,|A_{i,t}|)
                       + \min(\lambda_H H_{i,t},\; |A_{i,t}|/\kappa)\Big] $$
    with $u$ from :func:`symmetric_kl` on ``vocab`` (raw image) and ``extras["vocab_perturbed"]``
    (noisy image), both detached; $n_i = 1$ for rollouts routed through the noisy branch
    (``extras["noisy_branch"]``, drawn with the annealed probability of
    :func:`rlobj.rollout.perception.annealed_branch_probability`) or for every row with
    ``rows="all"``; $H$ the detached full-vocabulary entropy (only read when $\lambda_H > 0$).
    The bonus is $\ge 0$, non-decreasing in $U_i$ and zero where $A = 0$; it is at most
    $(c_u + 1/\kappa)|A|$ (just $c_u|A|$ with $\lambda_H = 0$), so it never flips the sign of a
    negative advantage when that factor is below 1 (the defaults: $c_u = 0.5$, $\lambda_H = 0$).

    **Unverified** (spec §7): only VOGUE's abstract and a figure caption could be read ("token-level
    symmetric KL between branches provides a visual-uncertainty signal used to shape the
    noisy-branch advantage"); no reference code. The cap form, the token-entropy bonus and all
    coefficients are assumptions exposed as options; the defaults are **placeholders**, not the
    paper's values.

    Args:
        lambda_u: $\lambda_u \ge 0$, uncertainty coefficient (placeholder 0.1).
        cap: $c_u \ge 0$, cap of the uncertainty bonus relative to $|A|$ (placeholder 0.5).
        lambda_h: $\lambda_H \ge 0$, token-entropy coefficient (default 0: off).
        kappa: $\kappa > 0$, entropy-bonus cap divisor (placeholder 2.0, the form of "Reasoning
            with Exploration: an Entropy Perspective").
        rows: ``"noisy_branch"`` (bonus on rows flagged in ``extras["noisy_branch"]``, bool
            ``[batch]``) or ``"all"``.

    Writes ``advantages`` (place it after the advantage term, before the surrogate); metrics
    ``vogue/sym_kl`` (token mean of $u$), ``vogue/bonus`` (mean added advantage on valid tokens),
    ``vogue/noisy_fraction``.

    References:
        Liu et al., "Guiding Exploration with Visual Uncertainty Improves Multimodal Reasoning"
        (VOGUE), arXiv 2510.01444.
    """

    lambda_u: float = 0.1
    cap: float = 0.5
    lambda_h: float = 0.0
    kappa: Positive = 2.0
    rows: str = "noisy_branch"

    def __post_init__(self):
        for name in ("lambda_u", "cap", "lambda_h"):
            check_range("vogue_bonus", name, getattr(self, name), low=0.0)
        if self.rows not in VOGUE_ROWS:
            raise RlobjInputError(f"vogue_bonus.rows: expected one of {VOGUE_ROWS}, got {self.rows!r}")

    def slots_read(self) -> frozenset[str]:
        reads = {"advantages", "vocab", "mask", "extras:vocab_perturbed"}
        if self.rows == "noisy_branch":
            reads.add("extras:noisy_branch")
        if self.lambda_h > 0:
            reads.add("entropy")
        return frozenset(reads)

    def slots_written(self) -> frozenset[str]:
        return frozenset({"advantages"})

    def _noisy_rows(self, state: State) -> Tensor:
        batch = state.batch_size
        if self.rows == "all":
            return torch.ones(batch, dtype=torch.bool, device=state.mask.device)
        flags = state.require("extras:noisy_branch")
        if not isinstance(flags, Tensor) or flags.dtype != torch.bool:
            got = flags.dtype if isinstance(flags, Tensor) else type(flags).__name__
            raise RlobjInputError(f"extras['noisy_branch']: expected a bool tensor of shape (batch,), got {got}")
        check_shape("extras['noisy_branch']", flags, (batch,), "batch")
        return flags

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        noisy = self._noisy_rows(state)
        view = current_view(state, "vogue_bonus").detach()
        other = other_view(state, "vocab_perturbed", "vogue_bonus")
        mask = state.mask
        uncertainty = symmetric_kl(view, other, mask=mask).detach()
        uncertainty = torch.where(mask, uncertainty, torch.zeros((), dtype=uncertainty.dtype))
        sequence_u = masked_mean(uncertainty, mask, dim=-1)  # 0 for an empty row
        magnitude = advantages.abs()
        bonus = torch.minimum(self.lambda_u * sequence_u[:, None].to(magnitude.dtype), self.cap * magnitude)
        if self.lambda_h > 0:
            entropy = state.token_entropy().detach().to(magnitude.dtype)
            bonus = bonus + torch.minimum(self.lambda_h * entropy, magnitude / self.kappa)
        bonus = torch.where(mask & noisy[:, None], bonus, torch.zeros((), dtype=bonus.dtype))
        return state.update(advantages=(advantages + bonus).detach()).add_metrics(**{
            "vogue/sym_kl": masked_mean(uncertainty, mask),
            "vogue/bonus": masked_mean(bonus, mask),
            "vogue/noisy_fraction": noisy.float().mean(),
        })
