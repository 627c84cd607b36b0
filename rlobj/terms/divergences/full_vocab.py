"""Full-vocabulary divergences to a reference (or the initial) policy: forward and reverse KL,
Jensen-Shannon and f-divergences, computed exactly over the vocabulary.

Each reads the current policy's :class:`~rlobj.ops.vocab.VocabView` (``vocab``) and a stored
view of the other policy (``extras["vocab_ref"]``, or ``extras["vocab_init"]`` with
``against="init"``), a :class:`~rlobj.ops.vocab.VocabView` built the same way (or, for the
forward KL only, a stored :class:`~rlobj.ops.vocab.TopK`), and writes its own loss part. Each
term is evaluated only at valid tokens (``mask``) and never builds a ``[tokens, vocab]`` tensor
when the views come from hidden states; the other policy is a constant (its view is detached).
DPH-RL (Li et al., "The Choice of
Divergence", arXiv 2509.07430) argues for the mass-covering ones.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean
from rlobj.ops.vocab import JS, KL, FDivergence
from rlobj.terms._common import check_range
from rlobj.terms._views import current_view, other_view

__all__ = ["forward_kl", "reverse_kl", "js_divergence", "GENERATORS", "f_generator", "f_divergence"]


AGAINST = ("ref", "init")


def _check_against(term: str, against: str) -> None:
    if against not in AGAINST:
        raise RlobjInputError(f"{term}.against: expected one of {AGAINST}, got {against!r}")


class _FullVocabDivergence(Term):
    """Shared body: ``beta`` times a per-token divergence from one fused view evaluation."""

    #: name of the loss part / metric stem, set by each subclass
    _part: ClassVar[str] = ""
    _allow_topk: ClassVar[bool] = False

    def __post_init__(self):
        name = type(self).__name__
        check_range(name, "beta", self.beta, low=0.0)
        _check_against(name, self.against)

    def slots_read(self) -> frozenset[str]:
        return frozenset({"vocab", "mask", f"extras:vocab_{self.against}"})

    def slots_written(self) -> frozenset[str]:
        return frozenset({f"part:{self._part_name()}"})

    def _part_name(self) -> str:
        return self._part.format(against=self.against)

    def _query(self, other):  # pragma: no cover - every subclass overrides
        raise TypeError(f"{type(self).__name__} does not define _query")

    def __call__(self, state: State) -> State:
        name = type(self).__name__
        view = current_view(state, name)
        other = other_view(state, f"vocab_{self.against}", name, allow_topk=self._allow_topk)
        (divergence,) = view.evaluate(self._query(other), mask=state.mask)
        part = self._part_name()
        return state.add_part(part, LossPart(self.beta * divergence, state.mask)).add_metrics(
            **{part.replace("_", "/", 1): masked_mean(divergence.detach(), state.mask)}
        )


class forward_kl(_FullVocabDivergence):
    r"""$\ell_{i,t} = \beta\,\mathrm{KL}(\pi_\text{ref}\Vert\pi_\theta)(s_{i,t})
    = \beta\sum_v \pi_\text{ref}(v\mid s_{i,t})\log\frac{\pi_\text{ref}(v\mid s_{i,t})}{\pi_\theta(v\mid s_{i,t})}$,
    the full-vocabulary **forward** (mass-covering) KL.

    Mass-covering divergences keep the policy's support over everything the reference could
    say (DPH-RL, Li et al., "The Choice of Divergence", arXiv 2509.07430, Sec. 3; Lp-Reg's
    summaries also call its penalty a forward KL, arXiv 2510.03222). Computed exactly over the
    whole vocabulary through :class:`~rlobj.ops.vocab.VocabView` (no sampling noise, no
    ``[tokens, vocab]`` tensor). Gradient on the current logits: $\beta(\pi_\theta -
    \pi_\text{ref})$.

    Args:
        beta: $\beta$ (default 0.01, DPH-RL's forward-KL script default).
        against: ``"ref"`` reads ``extras["vocab_ref"]``, ``"init"`` reads
            ``extras["vocab_init"]``: a VocabView, or a stored
            :class:`~rlobj.ops.vocab.TopK` of that policy (renormalised on its k tokens).

    Loss part ``kl_<against>_forward_full`` (coexists with the sampled ``kl_<against>`` of
    :class:`kl_penalty`); metric ``kl/<against>_forward_full``.

    Example:
        >>> from rlobj import grpo, lp_reg, forward_kl
        >>> objective = grpo >> lp_reg(0.02) >> forward_kl(0.01)

    Warning:
        verl refuses full-vocabulary KL (``NotImplementedError``); TRL and OpenRLHF only offer
        the sampled estimators of :class:`kl_penalty`, whose expectation is the *reverse*
        KL $\mathrm{KL}(\pi_\theta\Vert\pi_\text{ref})$.
    """

    _part: ClassVar[str] = "kl_{against}_forward_full"
    _allow_topk: ClassVar[bool] = True
    beta: float = 0.01
    against: str = "ref"

    def _query(self, other):
        return KL(other, "forward")


class reverse_kl(_FullVocabDivergence):
    r"""$\ell_{i,t} = \beta\,\mathrm{KL}(\pi_\theta\Vert\pi_\text{ref})(s_{i,t})
    = \beta\sum_v \pi_\theta(v)\log\frac{\pi_\theta(v)}{\pi_\text{ref}(v)}$, the full-vocabulary
    **reverse** (mode-seeking) KL.

    The quantity that the sampled k1/k3 estimators of :class:`kl_penalty` estimate (GRPO,
    DeepSeekMath arXiv 2402.03300 Eq. 4), computed exactly: zero variance, and its gradient is
    the exact $\nabla\mathrm{KL}$ rather than a sampled-token surrogate. Gradient on the
    current logits: $\beta\,\pi_\theta\odot(\log\pi_\theta - \log\pi_\text{ref} -
    \mathrm{KL})$.

    Args:
        beta: $\beta$ (default 0.001, verl's ``kl_loss_coef``).
        against: ``"ref"`` or ``"init"`` (reads ``extras["vocab_<against>"]``, a VocabView;
            a stored top-k cannot give the reverse KL: its value is infinite off the k tokens).

    Loss part ``kl_<against>_reverse_full``; metric ``kl/<against>_reverse_full``.
    """

    _part: ClassVar[str] = "kl_{against}_reverse_full"
    beta: float = 0.001
    against: str = "ref"

    def _query(self, other):
        return KL(other, "reverse")


class js_divergence(_FullVocabDivergence):
    r"""$\ell_{i,t} = \beta\,\mathrm{JS}(\pi_\theta, \pi_\text{ref})
    = \tfrac\beta2\big[\mathrm{KL}(\pi_\theta\Vert m) + \mathrm{KL}(\pi_\text{ref}\Vert m)\big]$,
    $m = \tfrac12(\pi_\theta + \pi_\text{ref})$, over the whole vocabulary.

    Symmetric and bounded ($0 \le \mathrm{JS} \le \log 2$). DPH-RL (arXiv 2509.07430) uses the
    JS generator on samples of the initial policy (:class:`dph_divergence`); this is the exact
    full-vocabulary value, so ``js_divergence(beta)`` equals DPH-RL's $\eta$ with
    $\eta = 2\beta$ in expectation.

    Args:
        beta: $\beta$ (default 0.05, the low end of DPH-RL's JS range for $\eta/1$).
        against: ``"ref"`` or ``"init"`` (reads ``extras["vocab_<against>"]``, a VocabView).

    Loss part ``js_<against>_full``; metric ``js/<against>_full``.
    """

    _part: ClassVar[str] = "js_{against}_full"
    beta: float = 0.05
    against: str = "ref"

    def _query(self, other):
        return JS(other)


#: Named f-divergence generators $f(u)$, $u = \pi_\theta / \pi_\text{other}$ (``f_divergence``).
GENERATORS = ("kl", "reverse_kl", "js", "hellinger", "chi2", "alpha:<a>")


@dataclass(frozen=True)
class f_generator:
    r"""A named, picklable f-divergence generator $f$ (convex, $f(1) = 0$), $u$ the ratio:

    | name | $f(u)$ | $\sum_v Q_v f(P_v/Q_v)$ |
    |---|---|---|
    | ``"kl"`` | $u\log u$ | $\mathrm{KL}(P\Vert Q)$ |
    | ``"reverse_kl"`` | $u - 1 - \log u$ | $\mathrm{KL}(Q\Vert P)$ (DPH-RL's k3 form) |
    | ``"js"`` | $u\log u - (u+1)\log\frac{u+1}{2}$ | $2\,\mathrm{JS}(P, Q)$ |
    | ``"hellinger"`` | $(\sqrt u - 1)^2$ | $2 H^2(P, Q)$ |
    | ``"chi2"`` | $(u-1)^2$ | Pearson $\chi^2(P\Vert Q)$ |
    | ``"alpha:a"`` | $\frac{u^{1-a} - (1-a)u - a}{a(a-1)}$ | the $\alpha$-divergence ($a \notin \{0, 1\}$) |

    Generators from DPH-RL (arXiv 2509.07430, Sec. 3, Table 1). Called elementwise on a tensor
    of ratios; the derivative is taken by autograd inside the view.
    """

    name: str = "js"

    def __post_init__(self):
        self.alpha()  # validates the name

    def alpha(self) -> float | None:
        if self.name in ("kl", "reverse_kl", "js", "hellinger", "chi2"):
            return None
        if self.name.startswith("alpha:"):
            try:
                value = float(self.name.split(":", 1)[1])
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value in (0.0, 1.0):
                raise RlobjInputError(
                    f"generator: expected 'alpha:<a>' with a finite a not 0 or 1, got {self.name!r}"
                )
            return value
        raise RlobjInputError(f"generator: expected one of {GENERATORS}, got {self.name!r}")

    def __call__(self, u: Tensor) -> Tensor:
        a = self.alpha()
        if a is not None:
            return (u.pow(1.0 - a) - (1.0 - a) * u - a) / (a * (a - 1.0))
        log_u = torch.log(u)
        if self.name == "kl":
            return torch.xlogy(u, u)
        if self.name == "reverse_kl":
            return u - 1.0 - log_u
        if self.name == "js":
            return torch.xlogy(u, u) - (u + 1.0) * (torch.log1p(u) - math.log(2.0))
        if self.name == "hellinger":
            return (u.sqrt() - 1.0) ** 2
        return (u - 1.0) ** 2


class f_divergence(_FullVocabDivergence):
    r"""$\ell_{i,t} = \beta\,D_f(\pi_\theta\Vert\pi_\text{ref}) = \beta\sum_v
    \pi_\text{ref}(v)\,f\!\Big(\frac{\pi_\theta(v)}{\pi_\text{ref}(v)}\Big)$ over the whole
    vocabulary, for a named generator $f$ (see :class:`f_generator`).

    DPH-RL (Li et al., arXiv 2509.07430) argues for mass-covering f-divergences as the
    regulariser; with ``generator="kl"`` this equals :class:`reverse_kl`, with
    ``"reverse_kl"`` it equals :class:`forward_kl`, with ``"js"`` twice
    :class:`js_divergence` (tested identities).

    Args:
        generator: ``"kl"``, ``"reverse_kl"``, ``"js"``, ``"hellinger"``, ``"chi2"`` or
            ``"alpha:<a>"`` (e.g. ``"alpha:0.2"``, DPH-RL's default $a$); a string so the term
            stays printable and YAML-buildable.
        beta: $\beta$ (default 0.01).
        against: ``"ref"`` or ``"init"`` (reads ``extras["vocab_<against>"]``, a VocabView).

    Loss part ``f_<against>_full``; metric ``f/<against>_full``. Ratios above
    $e^{88}$ overflow float32: prefer the KL / JS terms when the policies are far apart.
    """

    _part: ClassVar[str] = "f_{against}_full"
    generator: str = "js"
    beta: float = 0.01
    against: str = "ref"

    def __post_init__(self):
        super().__post_init__()
        f_generator(self.generator)

    def _query(self, other):
        return FDivergence(other, f_generator(self.generator))
