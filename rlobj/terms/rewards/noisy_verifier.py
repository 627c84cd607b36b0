r"""Noisy-verifier corrections: rewards from a verifier that makes mistakes at known rates.

Cai, Wang, Liu, Liu, Niu, Sugiyama, "Reinforcement Learning with Verifiable yet Noisy
Rewards under Imperfect Verifiers", arXiv 2510.00915. The clean reward $R^* \in \{0, 1\}$ is
observed through a channel

$$P(\tilde R = 1 \mid R^* = 0) = \rho_0 \text{ (false positives)},\qquad
  P(\tilde R = 0 \mid R^* = 1) = \rho_1 \text{ (false negatives)},\qquad \rho_0 + \rho_1 < 1,$$

so $\mathbb E[\tilde R \mid R^*] = (1 - \rho_0 - \rho_1) R^* + \rho_0$. Two corrections:

* :class:`backward_correction` (PGBC) rewrites the reward into an unbiased estimate of the
  clean one; follow it with a baseline that keeps its scale (``leave_one_out()``), never with
  a per-group z-score: any positive affine map of a binary reward followed by group
  standardisation gives back the uncorrected GRPO advantage. :func:`check_noisy_chain`
  refuses that order when the chain is built.
* :class:`~rlobj.terms.advantages.noisy_verifier.forward_correction` (PGFC) needs only
  $\rho_1$ and writes the advantages directly.

:class:`fn_rate_from_appeals` estimates $\rho_1$ online from re-checked negatives ("appeals"),
keeping an EMA as returned term state; the corrections read it with ``rho1=None``.
Both corrections act on the outcome reward ``rewards`` (the paper's process-reward extension,
correcting each step reward before a return-to-go, is not implemented here).
"""

from collections.abc import Sequence

import torch

from rlobj.algebra.contract import Fraction, NonNegative, OpenFraction, Positive
from rlobj.algebra.state import State
from rlobj.algebra.term import Term, as_terms, term_name
from rlobj.ops.errors import RlobjBuildError, RlobjInputError, check_shape
from rlobj.terms._common import check_range
from rlobj.terms._noisy_verifier import _RHO_KEY, _binary_rewards, _check_rates, _rho1
from rlobj.terms.advantages.baselines import (
    batch_whiten,
    group_baseline_whiten,
    group_mean_batch_std,
    group_zscore,
)

__all__ = ["STANDARDIZING_TERMS", "backward_correction", "fn_rate_from_appeals", "check_noisy_chain"]


#: Advantage terms that divide by a standard deviation of the rewards and so undo a positive
#: affine reward correction (for binary rewards they return the uncorrected advantage).
STANDARDIZING_TERMS = (group_zscore, group_mean_batch_std, batch_whiten, group_baseline_whiten)


class backward_correction(Term, stage="batch", reads=("rewards",), writes=("rewards",)):
    r"""Unbiased reward from a noisy binary verifier (PGBC).

    $$\hat R_i = \frac{\tilde R_i - \rho_0}{\max(1 - \rho_0 - \rho_1,\ \varepsilon_c)},\qquad
      \mathbb E[\hat R \mid R^*] = R^* \text{ when the rates are right.}$$

    Cai et al., arXiv 2510.00915, Sec. 4.1 (backward correction) and App. B.2, which
    recommends the leave-one-out baseline with a fixed scale, not the current group std:
    ``backward_correction(0.1, 0.2) >> leave_one_out() >> ...``. Defaults are the paper's
    synthetic-noise setting ($\rho_0 = 0.1$, $\rho_1 = 0.2$, App. E.3).

    Args:
        rho0: $\rho_0$, the false-positive rate, in $[0, 1)$.
        rho1: $\rho_1$, the false-negative rate, or ``None`` to read the online estimate
            ``extras["noise_rho1"]`` written by :class:`fn_rate_from_appeals`.
        eps_c: floor $\varepsilon_c$ of the denominator, only reachable with an estimated
            $\rho_1$ (UNVERIFIED: the paper names the floor but not its value; 0.01 here).
        allow_standardize: allow a std-normalising advantage term (``group_zscore``, ...)
            after this one. Off by default: :func:`check_noisy_chain` refuses that order,
            because it undoes the correction exactly.

    Warning:
        The variance of $\hat R$ is that of $\tilde R$ times $1/(1 - \rho_0 - \rho_1)^2$.

    Example:
        >>> from rlobj import grpo, group_zscore, leave_one_out
        >>> recipe = backward_correction(rho0=0.1, rho1=0.2) >> grpo.replace(group_zscore, leave_one_out())
    """

    rho0: float = 0.1
    rho1: float | None = 0.2
    eps_c: Positive = 0.01
    allow_standardize: bool = False

    def __post_init__(self):
        _check_rates("backward_correction", self.rho0, self.rho1)

    def slots_read(self) -> frozenset[str]:
        return frozenset(self.reads + (() if self.rho1 is not None else (f"extras:{_RHO_KEY}",)))

    def check_chain(self, terms: Sequence[Term], position: int) -> None:
        """Refuse a std-normalising advantage term after this one (see the class docstring)."""
        if self.allow_standardize:
            return
        for later in terms[position + 1:]:
            if isinstance(later, STANDARDIZING_TERMS):
                raise RlobjBuildError(
                    f"backward_correction is followed by {term_name(later)}, which divides by a "
                    f"reward std: for binary rewards that returns exactly the uncorrected advantage "
                    f"(Cai et al., arXiv 2510.00915, App. B.2). Use leave_one_out() or "
                    f"group_mean_baseline() instead, or pass allow_standardize=True."
                )

    def __call__(self, state: State) -> State:
        noisy = _binary_rewards(state, "backward_correction")
        rho1 = _rho1(state, self.rho1, "backward_correction")
        scale = torch.clamp(torch.as_tensor(1.0 - self.rho0 - rho1, dtype=noisy.dtype), min=self.eps_c)
        corrected = (noisy - self.rho0) / scale
        return state.update(rewards=corrected).add_metrics(**{"noisy/backward_scale": scale,
                                                              "noisy/corrected_mean": corrected.mean()})


class fn_rate_from_appeals(Term,
                           stage="batch",
                           reads=("rewards", "extras:appeal_flipped"),
                           writes=("rewards", f"extras:{_RHO_KEY}")):
    r"""Online estimate of the false-negative rate $\rho_1$ from appealed negatives (stateful).

    Each rule-negative response is re-checked ("appealed") by a second verifier with
    probability $q$; $P_L$ = appealed negatives that the second verifier flips to positive,
    $P_R$ = rule positives. Horvitz-Thompson count of false negatives and the smoothed rate:

    $$\widehat{FN} = |P_L| / q,\qquad
      \hat\rho_1^{(t)} = \frac{\widehat{FN} + \alpha}{\widehat{FN} + |P_R| + \alpha + \beta},\qquad
      \bar\rho_1^{(t)} = \lambda\,\bar\rho_1^{(t-1)} + (1-\lambda)\,\hat\rho_1^{(t)}.$$

    Cai et al., arXiv 2510.00915, App. B.9 and E.4: $q = 0.1$, $\alpha = \beta = 10^{-5}$,
    $\lambda = 0.9$, one update per policy step (the batch stage runs once per step). The EMA
    is returned as term state (pass ``Output.term_state`` back); its value after this step's
    update is written to ``extras["noise_rho1"]`` for ``backward_correction(rho1=None)`` /
    ``forward_correction(rho1=None)``. The first step starts the EMA at ``init``, or at the first
    estimate when ``init`` is None (UNVERIFIED: the paper does not say). ``max_rate`` caps the
    estimate below 1 so the corrections stay defined. Rewards are left unchanged (whether
    flipped items are also relabelled is not stated; relabel upstream if you want it).

    Reads ``rewards`` (0/1) and ``extras["appeal_flipped"]`` (``" batch"`` bool: appealed and
    flipped; must be False on rule positives).

    Example:
        >>> from rlobj import grpo, group_zscore, leave_one_out
        >>> recipe = (fn_rate_from_appeals(q=0.1) >> backward_correction(rho0=0.0, rho1=None)
        ...           >> grpo.replace(group_zscore, leave_one_out()))
    """

    q: OpenFraction = 0.1
    alpha: NonNegative = 1e-5
    beta: NonNegative = 1e-5
    ema: Fraction = 0.9
    init: float | None = None
    max_rate: Fraction = 0.99

    def __post_init__(self):
        if self.max_rate >= 1.0:
            raise RlobjInputError(f"fn_rate_from_appeals.max_rate: expected < 1, got {self.max_rate}")
        if self.init is not None:
            check_range("fn_rate_from_appeals", "init", self.init, low=0.0, high=self.max_rate)

    def estimate(self, flipped: float, positives: float) -> float:
        """$\\hat\\rho_1$ of one step from $|P_L|$ and $|P_R|$."""
        false_negatives = flipped / self.q
        return (false_negatives + self.alpha) / (false_negatives + positives + self.alpha + self.beta)

    def __call__(self, state: State) -> State:
        rewards = _binary_rewards(state, "fn_rate_from_appeals")
        flipped = state.require("extras:appeal_flipped")
        check_shape("extras['appeal_flipped']", flipped, (state.batch_size,), "batch")
        flipped = flipped.bool()
        if bool((flipped & (rewards == 1)).any()):
            rows = (flipped & (rewards == 1)).nonzero().flatten().tolist()
            raise RlobjInputError(
                f"extras['appeal_flipped']: only rule negatives (reward 0) can be appealed, "
                f"but rows {rows[:10]} have reward 1"
            )
        step = self.estimate(float(flipped.sum()), float((rewards == 1).sum()))
        previous = state.own_state(self.init)
        smoothed = step if previous is None else self.ema * float(previous) + (1.0 - self.ema) * step
        smoothed = min(smoothed, self.max_rate)
        value = torch.tensor(smoothed, dtype=state.logp.dtype)
        return (state.update(extras={**state.extras, _RHO_KEY: value}).set_own_state(smoothed)
                .add_metrics(**{"noisy/rho1_step": step, "noisy/rho1_ema": smoothed}))


def check_noisy_chain(terms) -> None:
    """Build-time check: run every term's ``check_chain(terms, position)`` hook.

    Raises :class:`~rlobj.ops.errors.RlobjBuildError` when a :class:`backward_correction` is
    followed by a std-normalising advantage term (:data:`STANDARDIZING_TERMS`). ``terms`` is a
    term, a chain, or a sequence of terms.
    """
    flat = as_terms(terms) if isinstance(terms, Term) else tuple(t for term in terms for t in as_terms(term))
    for position, term in enumerate(flat):
        hook = getattr(term, "check_chain", None)
        if hook is not None:
            hook(flat, position)
