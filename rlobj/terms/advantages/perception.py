r"""Perception terms: how much the policy's tokens depend on a perturbed part of its context.

Each compares the policy on the normal context with the policy on a perturbed one (image patches
blackened, prompt spans masked), computed by :func:`rlobj.rollout.perception.perception_forward`
and passed in ``extras``:

* ``extras["logp_perturbed"]`` ``[batch, seq]``: log-probs of the sampled response tokens under the
  perturbed context, $\log\tilde\pi(y_t) = \log\pi(y_t \mid q, \tilde I, y_{<t})$;
* ``extras["vocab_perturbed"]``: a :class:`~rlobj.ops.vocab.VocabView` of the perturbed
  next-token distributions (full-vocabulary variants; ``vocab`` is the normal one).

| term / function | paper | reads |
|---|---|---|
| :class:`perception_kl` | PAPO implicit perception loss (arXiv 2507.06448) | ``logp`` + ``logp_perturbed`` (or the two views) |
| :class:`double_entropy` | PAPO double entropy loss | ``logp`` + ``logp_perturbed`` |
| :func:`visual_dependency` / :class:`visual_dependency_score` | VPPO token visual dependency (arXiv 2510.09285) | ``logp_old`` + ``logp_perturbed`` |
| :func:`symmetric_kl` / :class:`vogue_bonus` | VOGUE visual-uncertainty bonus (arXiv 2510.01444) | ``vocab`` + ``vocab_perturbed`` |

The perturbed branch is a constant by default (PAPO and VPPO compute it once after the rollout
with the old policy, detached); ``perturbed_grad=True`` lets a gradient through when it was
recomputed with the current policy.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import masked_mean
from rlobj.ops.typecheck import typechecked
from rlobj.ops.vocab import KL, VocabView
from rlobj.terms._common import check_range
from rlobj.terms.divergences import current_view, kl_estimate, other_view

__all__ = [
    "visual_dependency",
    "symmetric_kl",
    "perception_kl",
    "double_entropy",
    "visual_dependency_score",
    "vogue_bonus",
]

PERCEPTION_ESTIMATORS = ("k3", "full")
VOGUE_ROWS = ("noisy_branch", "all")


def _perturbed_logp(state: State, by: str, keep_grad: bool = False) -> Tensor:
    """``extras["logp_perturbed"]`` checked against the batch, zero at padding (detached unless asked)."""
    value = state.extras.get("logp_perturbed")
    if value is None:
        raise RlobjInputError(
            f"{by} reads extras['logp_perturbed'], but the state has none. Compute the perturbed "
            "pass with rlobj.rollout.perception.perception_forward(...) and pass "
            "extras={'logp_perturbed': view.logp}."
        )
    if not isinstance(value, Tensor) or not value.is_floating_point():
        raise RlobjInputError(f"extras['logp_perturbed']: expected a float tensor, got {type(value).__name__}")
    check_shape("extras['logp_perturbed']", value, tuple(state.mask.shape), "batch seq")
    valid = torch.where(state.mask, value.detach(), torch.zeros((), dtype=value.dtype))
    if not bool(torch.isfinite(valid).all()):
        raise RlobjInputError("extras['logp_perturbed']: expected finite values at valid tokens, got NaN/inf")
    if bool((valid > 1e-6).any()):
        raise RlobjInputError(
            f"extras['logp_perturbed']: log-probabilities must be <= 0 at valid tokens, got max {float(valid.max()):.4g}")
    value = value if keep_grad else value.detach()
    return torch.where(state.mask, value, torch.zeros((), dtype=value.dtype))


@typechecked
def visual_dependency(
    logp_perturbed: Float[Tensor, "batch seq"],
    logp_old: Float[Tensor, "batch seq"],
    mask: Bool[Tensor, "batch seq"] | None = None,
) -> Float[Tensor, "batch seq"]:
    r"""VPPO's per-token visual dependency $S_t$, the k3 estimate of the perception KL.

    $$ d_t = \mathrm{clip}(\log\pi_\text{old}(y_t\mid q, I', y_{<t}) - \log\pi_\text{old}(y_t\mid q, I, y_{<t}), -20, 20),
       \qquad S_t = \mathrm{clip}(e^{d_t} - d_t - 1, 0, 10) $$
    with $I'$ the image after random patch blackening (14-px patches, probability 0.5). $S_t$ is
    the sampled-token estimator of $\mathrm{KL}(\pi_\text{old}(\cdot\mid I)\,\Vert\,\pi_\text{old}(\cdot\mid I'))$:
    $S_t \ge 0$, $S_t = 0$ iff the two log-probs are equal, $S_t \le 10$. No gradient (both
    inputs are detached): it is a score, not a loss.

    Args:
        logp_perturbed: $\log\pi_\text{old}$ of the sampled tokens under the perturbed context.
        logp_old: $\log\pi_\text{old}$ of the same tokens under the normal context.
        mask: valid tokens; $S_t = 0$ elsewhere. Default: all valid.

    Returns:
        $S$ ``[batch, seq]``, the value for ``extras["visual_dependency"]`` (read by VPPO's
        pivotal-token mask and trajectory advantage shaping).

    Example:
        >>> s = visual_dependency(torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.0, -1.0]]))
        >>> [round(v, 4) for v in s[0].tolist()]  # e^-1 - (-1) - 1
        [0.0, 0.3679]

    References:
        Huang et al., "Spotlight on Token Perception for Multimodal Reinforcement Learning"
        (VPPO), arXiv 2510.09285, token visual dependency; reference code clamps as above.
    """
    if logp_perturbed.shape != logp_old.shape:
        raise RlobjInputError(
            f"logp_perturbed: expected the shape of logp_old {tuple(logp_old.shape)}, got {tuple(logp_perturbed.shape)}")
    score = kl_estimate(logp_old.detach(), logp_perturbed.detach(), "k3", clamp=True).clamp(min=0.0)
    if mask is not None:
        check_shape("mask", mask, tuple(logp_old.shape), "batch seq")
        score = torch.where(mask, score, torch.zeros((), dtype=score.dtype))
    return score


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


@dataclass(frozen=True)
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

    gamma: float = 0.01
    estimator: str = "k3"
    clamp_max: float | None = None
    perturbed_grad: bool = False

    def __post_init__(self):
        check_range("perception_kl", "gamma", self.gamma, low=0.0)
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


@dataclass(frozen=True)
class double_entropy(Term):
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

    reads: ClassVar[tuple[str, ...]] = ("logp", "mask", "extras:logp_perturbed")
    writes: ClassVar[tuple[str, ...]] = ("part:entropy_double",)
    eta_orig: float = 0.03
    eta_perturbed: float = 0.03
    perturbed_grad: bool = False

    def __post_init__(self):
        check_range("double_entropy", "eta_orig", self.eta_orig, low=0.0)
        check_range("double_entropy", "eta_perturbed", self.eta_perturbed, low=0.0)

    def __call__(self, state: State) -> State:
        entropy_orig = -state.logp
        entropy_perturbed = -_perturbed_logp(state, "double_entropy", keep_grad=self.perturbed_grad)
        loss = self.eta_orig * entropy_orig + self.eta_perturbed * entropy_perturbed
        return state.add_part("entropy_double", LossPart(loss, state.mask)).add_metrics(
            **{"perception/entropy_orig": masked_mean(entropy_orig.detach(), state.mask),
               "perception/entropy_perturbed": masked_mean(entropy_perturbed.detach(), state.mask)}
        )


@dataclass(frozen=True)
class visual_dependency_score(Term):
    r"""Write VPPO's per-token visual dependency $S_{i,t}$ into ``extras["visual_dependency"]``.

    $S_{i,t}$ = :func:`visual_dependency` (``extras["logp_perturbed"]``, ``logp_old``): the
    clamped k3 estimate of $\mathrm{KL}(\pi_\text{old}(\cdot\mid I)\Vert\pi_\text{old}(\cdot\mid I'))$
    at every valid token (0 at padding), no gradient. A batch-stage term that changes no loss:
    put it before the VPPO terms that read ``extras["visual_dependency"]`` (pivotal-token mask,
    trajectory advantage shaping).

    Metric ``perception/visual_dependency`` (token mean).

    References:
        Huang et al., VPPO, arXiv 2510.09285 (spec §8.1).
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("logp_old", "mask", "extras:logp_perturbed")
    writes: ClassVar[tuple[str, ...]] = ("extras:visual_dependency",)

    def __call__(self, state: State) -> State:
        logp_old = state.require("logp_old", "visual_dependency_score")
        logp_perturbed = _perturbed_logp(state, "visual_dependency_score")
        score = visual_dependency(logp_perturbed, logp_old, state.mask)
        return state.update(extras={**state.extras, "visual_dependency": score}).add_metrics(
            **{"perception/visual_dependency": masked_mean(score, state.mask)}
        )


@dataclass(frozen=True)
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
    kappa: float = 2.0
    rows: str = "noisy_branch"

    def __post_init__(self):
        for name in ("lambda_u", "cap", "lambda_h"):
            check_range("vogue_bonus", name, getattr(self, name), low=0.0)
        check_range("vogue_bonus", "kappa", self.kappa, low=0.0, low_open=True)
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
        flags = state.require("extras:noisy_branch", "vogue_bonus")
        if not isinstance(flags, Tensor) or flags.dtype != torch.bool:
            got = flags.dtype if isinstance(flags, Tensor) else type(flags).__name__
            raise RlobjInputError(f"extras['noisy_branch']: expected a bool tensor of shape (batch,), got {got}")
        check_shape("extras['noisy_branch']", flags, (batch,), "batch")
        return flags

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages", "vogue_bonus")
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

