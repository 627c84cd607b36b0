"""Divergences between the policy on the normal and on a perturbed context.

* :class:`perception_kl`: PAPO's implicit perception loss (Wang et al., "Perception-Aware
  Policy Optimization for Multimodal Reasoning", arXiv 2507.06448), the loss part
  ``perception_kl``.
* :func:`symmetric_kl`: the per-token symmetric KL of two full views (VOGUE's visual
  uncertainty, used by :class:`~rlobj.terms.advantages.perception.vogue_bonus`).

The perturbed branch (image patches blackened, prompt spans masked) is computed by
:func:`rlobj.rollout.perception.perception_forward` and passed in ``extras``
(``logp_perturbed`` or ``vocab_perturbed``); it is a constant by default, and
``perturbed_grad=True`` lets a gradient through when it was recomputed with the current policy.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean
from rlobj.ops.vocab import KL, VocabView
from rlobj.terms._common import check_range
from rlobj.terms._perception import _perturbed_logp
from rlobj.terms._views import current_view, other_view
from rlobj.terms.divergences.sampled_kl import kl_estimate

__all__ = ["symmetric_kl", "perception_kl"]


PERCEPTION_ESTIMATORS = ("k3", "full")


def symmetric_kl(view: VocabView, other: VocabView, mask: Tensor | None = None,
                 scale: float = 0.5) -> Tensor:
    r"""Per-token symmetric KL between two full next-token distributions (VOGUE's visual uncertainty).

    $$ u_t = s\,\big[\mathrm{KL}(P_t\Vert Q_t) + \mathrm{KL}(Q_t\Vert P_t)\big]
           = s \sum_v (P_{t,v} - Q_{t,v})(\log P_{t,v} - \log Q_{t,v}) $$
    with $P$ = ``view`` (normal context), $Q$ = ``other`` (perturbed), $s$ = ``scale``
    ($\tfrac12$ in VOGUE's reading, spec §7.1; 1 for Jeffreys' divergence). Both directions come
    from one chunked pass of :class:`~rlobj.ops.vocab.VocabView` (no ``[tokens, vocab]`` tensor
    from hidden states). Symmetric, $\ge 0$, $0$ iff $P = Q$, invariant to a constant added to a
    row of logits. Gradients flow into whichever view carries them; detach for a score.

    Args:
        view, other: VocabViews of the same ``(batch, seq)`` shape.
        mask: optional valid-token mask (0 elsewhere, not computed).
        scale: $s > 0$. Default 0.5.

    Returns:
        ``[batch, seq]`` float32 (float64 for float64 views).

    Example:
        >>> p = VocabView.from_logits(torch.tensor([[[0.0, 1.0]]]))
        >>> q = VocabView.from_logits(torch.tensor([[[1.0, 0.0]]]))
        >>> round(float(symmetric_kl(p, q)), 4)  # (2*sigmoid(1) - 1) * 2 * 0.5
        0.4621
    """
    if not isinstance(view, VocabView) or not isinstance(other, VocabView):
        raise RlobjInputError(
            f"symmetric_kl: expected two VocabViews, got {type(view).__name__} and {type(other).__name__}")
    if view.shape != other.shape:
        raise RlobjInputError(f"other: expected a view of shape (batch seq) = {view.shape}, got {other.shape}")
    if not scale > 0:
        raise RlobjInputError(f"scale: expected > 0, got {scale!r}")
    forward, reverse = view.evaluate(KL(other, "forward"), KL(other, "reverse"), mask=mask)
    return scale * (forward + reverse)


class perception_kl(Term):
    r"""PAPO's implicit perception loss: **maximise** the KL between the normal and the perturbed policy.

    $$ \ell_{i,t} = -\gamma\,\mathrm{KL}^\text{prcp}_{i,t}, \qquad
       \mathrm{KL}^\text{prcp}_{i,t} = e^{d} - d - 1, \quad
       d = \mathrm{clip}\big(\log\tilde\pi(y_{i,t}) - \log\pi_\theta(y_{i,t}), -20, 20\big) $$
    (``estimator="k3"``, the reference code: the sampled-token estimate of
    $\mathrm{KL}(\pi_\theta(\cdot\mid q,I)\,\Vert\,\tilde\pi(\cdot\mid q,I_\text{mask}))$ with
    verl's clamps, k3 to $[-10, 10]$), or the exact full-vocabulary
    $\mathrm{KL}(\pi_\theta\Vert\tilde\pi) = \sum_v \pi_\theta(v)\log\frac{\pi_\theta(v)}{\tilde\pi(v)}$
    (``estimator="full"``, read through ``vocab`` and ``extras["vocab_perturbed"]``).
    $\tilde\pi$ is the policy on the masked image / masked prompt (PAPO: the old policy on an image
    whose 14-px patches are blackened with probability 0.6), a constant unless
    ``perturbed_grad=True``. Minimising $-\gamma\,\mathrm{KL}$ pushes the policy to rely on the
    context that was masked: $\partial\ell/\partial\mathrm{KL} = -\gamma < 0$. When the perturbed
    pass equals the normal one the KL, the loss and its gradient are exactly zero.

    Args:
        gamma: $\gamma \ge 0$ (``kl_prcp_coef``): 0.01 in PAPO's config default and DAPO scripts,
            0.02 in its GRPO 7B script.
        estimator: ``"k3"`` (default, reads ``logp`` and ``extras["logp_perturbed"]``) or
            ``"full"`` (reads ``vocab`` and ``extras["vocab_perturbed"]``).
        clamp_max: optional upper clamp of $\mathrm{KL}^\text{prcp}$ (PAPO's optional
            $[0, 0.2]$; off by default): the gradient is zero above it.
        perturbed_grad: let gradients reach the perturbed branch (PAPO's off-by-default
            recomputation with the current policy). Default False (detached).

    Loss part ``perception_kl``; metric ``perception/kl`` (the KL itself, $\ge 0$).

    Example:
        >>> from rlobj import grpo, perception_kl, double_entropy
        >>> objective = grpo >> perception_kl(0.01) >> double_entropy(0.03, 0.03)

    References:
        Wang et al., "Perception-Aware Policy Optimization for Multimodal Reasoning" (PAPO),
        arXiv 2507.06448, implicit perception loss; reference code at commit fb63bf4 (spec §6.1).
        The optional per-sequence top-20% token mask and the annealing of $\gamma$ are not
        implemented here.

    Warning:
        The sign is the opposite of a KL *penalty*: this term rewards divergence. Pair it with
        :class:`double_entropy`, which keeps the policy from maximising the KL by raising its
        entropy (the collapse mode PAPO reports).
    """

    gamma: NonNegative = 0.01
    estimator: str = "k3"
    clamp_max: float | None = None
    perturbed_grad: bool = False

    def __post_init__(self):
        if self.estimator not in PERCEPTION_ESTIMATORS:
            raise RlobjInputError(
                f"perception_kl.estimator: expected one of {PERCEPTION_ESTIMATORS}, got {self.estimator!r}")
        if self.clamp_max is not None:
            check_range("perception_kl", "clamp_max", self.clamp_max, low=0.0, low_open=True)

    def slots_read(self) -> frozenset[str]:
        if self.estimator == "full":
            return frozenset({"vocab", "mask", "extras:vocab_perturbed"})
        return frozenset({"logp", "mask", "extras:logp_perturbed"})

    def slots_written(self) -> frozenset[str]:
        return frozenset({"part:perception_kl"})

    def __call__(self, state: State) -> State:
        if self.estimator == "k3":
            logp_perturbed = _perturbed_logp(state, "perception_kl", keep_grad=self.perturbed_grad)
            kl = kl_estimate(state.logp, logp_perturbed, "k3", clamp=True)
        else:
            view = current_view(state, "perception_kl")
            other = other_view(state, "vocab_perturbed", "perception_kl")
            if self.perturbed_grad:
                other = state.extras["vocab_perturbed"]
            (kl,) = view.evaluate(KL(other, "reverse"), mask=state.mask)
        if self.clamp_max is not None:
            kl = kl.clamp(0.0, self.clamp_max)
        kl = torch.where(state.mask, kl, torch.zeros((), dtype=kl.dtype))
        return state.add_part("perception_kl", LossPart(-self.gamma * kl, state.mask)).add_metrics(
            **{"perception/kl": masked_mean(kl.detach(), state.mask)}
        )
