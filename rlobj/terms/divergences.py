r"""Sampled-token divergences to a reference policy: k1, k2, k3, abs, straight-through.

With $d_{i,t} = \log\pi_\text{ref}(y_{i,t}) - \log\pi_\theta(y_{i,t})$ on the sampled tokens
(Schulman, "Approximating KL Divergence", 2020):

| estimator | value | $\mathbb E_{y\sim\pi_\theta}$ |
|---|---|---|
| ``k1`` | $-d$ | $\mathrm{KL}(\pi_\theta\Vert\pi_\text{ref})$ (unbiased, can be negative) |
| ``k2`` | $\tfrac12 d^2$ | biased, low variance, $\ge 0$ |
| ``k3`` | $e^{d} - d - 1$ | $\mathrm{KL}(\pi_\theta\Vert\pi_\text{ref})$ (unbiased, $\ge 0$) |
| ``abs`` | $\lvert d\rvert$ | |

``straight_through=True`` keeps the value of the chosen estimator but takes the gradient of
k2 (verl's ``"k3+"``-style estimators): $v = \mathrm{sg}[k] + k_2 - \mathrm{sg}[k_2]$.
``placement="loss"`` adds $\beta\,k$ as the loss part ``kl_<against>``; ``placement="reward"``
subtracts $\beta\,\mathrm{sg}[k]$ from the token rewards (before the advantage terms, as
PPO-RLHF and REINFORCE++ do). As in verl, $d$ is clamped to $[-20, 20]$ and k3 to $[-10, 10]$.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import check_range

__all__ = ["kl_penalty", "kl_estimate", "k1_kl", "k2_kl", "k3_kl", "abs_kl"]

ESTIMATORS = ("k1", "k2", "k3", "abs")


def kl_estimate(logp: Tensor, logp_ref: Tensor, estimator: str = "k3",
                straight_through: bool = False, clamp: bool = True) -> Tensor:
    """Per-token KL estimate of the table above (no masking).

    ``clamp=True`` applies verl's bounds ($d$ to $[-20, 20]$, k3 to $[-10, 10]$); TRL and
    OpenRLHF apply none (``clamp=False``).
    """
    d = torch.clamp(logp_ref - logp, -20.0, 20.0) if clamp else logp_ref - logp
    k2 = 0.5 * d**2
    if estimator == "k1":
        value = -d
    elif estimator == "k2":
        value = k2
    elif estimator == "k3":
        # expm1(d) - d, not exp(d) - d - 1: the same value, but never negative and not 0 for
        # small d != 0 in float32 (where exp(d) - 1 cancels catastrophically)
        value = torch.expm1(d) - d
        value = torch.clamp(value, -10.0, 10.0) if clamp else value
    elif estimator == "abs":
        value = d.abs()
    else:
        raise RlobjInputError(f"kl estimator: expected one of {ESTIMATORS}, got {estimator!r}")
    if straight_through:
        value = value.detach() + k2 - k2.detach()
    return value


@dataclass(frozen=True)
class kl_penalty(Term):
    r"""$\beta$ times a sampled-token KL estimate to a reference, in the loss or in the reward.

    Args:
        beta: coefficient $\beta$ (GRPO: 0.04 with k3, DeepSeekMath arXiv 2402.03300 Eq. 4;
            verl example default 0.001; REINFORCE++ in-reward k1 0.01).
        estimator: ``"k1"``, ``"k2"``, ``"k3"`` or ``"abs"``.
        against: ``"ref"`` reads ``logp_ref``; ``"init"`` reads ``extras["logp_init"]``.
        placement: ``"loss"`` or ``"reward"``.
        straight_through: value of ``estimator``, gradient of k2.
        allow_reward_and_loss: set True to allow a KL against the same policy both in the
            reward and in the loss of one chain (refused otherwise).
        clamp: verl's bounds on $d$ ($\pm 20$) and k3 ($\pm 10$); False for TRL/OpenRLHF
            (no clamping).
        bias_correction: TRL's ``use_bias_correction_kl`` (on by default in TRL 1.16): the
            per-token estimate times the importance ratio $\pi_\theta/\pi_\text{old}$ (with its
            gradient; 1 in value on-policy), so its gradient is the unbiased reverse-KL gradient
            (DeepSeek-V3.2, arXiv 2512.02556). Loss placement only; default False (verl,
            OpenRLHF and the GRPO paper do not weight the KL).
        scale_key: None, or the name of a per-row multiplier ``extras[scale_key]`` (``[batch]``)
            of the KL: CLPO's difficulty-conditioned KL (half the coefficient for hard prompts),
            with the ``extras:kl_scale`` provider ``DifficultyKLScale``.

    Warning:
        TRL applies k3 in the loss (``beta``); OpenRLHF's ``use_kl_loss`` also k3, and its
        in-reward KL uses k1; verl names them ``low_var_kl`` (k3), ``kl`` (k1), ``mse`` (k2),
        ``abs``.
    """

    may_read: ClassVar[tuple[str, ...]] = ("logp_old",)
    beta: float = 0.001
    estimator: str = "k3"
    against: str = "ref"
    placement: str = "loss"
    straight_through: bool = False
    allow_reward_and_loss: bool = False
    clamp: bool = True
    bias_correction: bool = False
    scale_key: str | None = None

    def __post_init__(self):
        check_range("kl_penalty", "beta", self.beta, low=0.0)
        if self.scale_key is not None and (not isinstance(self.scale_key, str) or not self.scale_key):
            raise RlobjInputError(f"kl_penalty.scale_key: expected None or an extras name, got {self.scale_key!r}")
        if self.bias_correction and self.placement == "reward":
            raise RlobjInputError("kl_penalty.bias_correction: TRL's importance-ratio weight applies to a KL "
                                  "in the loss; got placement='reward'")
        if self.estimator not in ESTIMATORS:
            raise RlobjInputError(f"kl_penalty.estimator: expected one of {ESTIMATORS}, got {self.estimator!r}")
        if self.against not in ("ref", "init"):
            raise RlobjInputError(f"kl_penalty.against: expected 'ref' or 'init', got {self.against!r}")
        if self.placement not in ("loss", "reward"):
            raise RlobjInputError(f"kl_penalty.placement: expected 'loss' or 'reward', got {self.placement!r}")

    @property
    def stage(self) -> str:
        return "batch" if self.placement == "reward" else "loss"

    def _target(self) -> str:
        return "logp_ref" if self.against == "ref" else "extras:logp_init"

    def slots_read(self) -> frozenset[str]:
        scale = {f"extras:{self.scale_key}"} if self.scale_key is not None else set()
        return frozenset({"logp", "mask", self._target()} | scale | ({"token_rewards"} if self.placement == "reward" else set()))

    def slots_written(self) -> frozenset[str]:
        return frozenset({"token_rewards"} if self.placement == "reward" else {f"part:kl_{self.against}"})

    def __call__(self, state: State) -> State:
        target = state.require(self._target(), "kl_penalty")
        if self.against == "init":
            if not isinstance(target, Tensor):
                raise RlobjInputError(f"extras['logp_init']: expected a tensor, got {type(target).__name__}")
            check_shape("extras['logp_init']", target, tuple(state.mask.shape), "batch seq")
            target = torch.where(state.mask, target, torch.zeros((), dtype=target.dtype))
        logp = state.logp
        if self.placement == "reward":
            logp = state.logp_old if state.logp_old is not None else state.logp.detach()
        kl = torch.where(state.mask, kl_estimate(logp, target.detach(), self.estimator,
                                                 self.straight_through, self.clamp), torch.zeros(()))
        metrics = {f"kl/{self.against}_{self.estimator}": masked_mean(kl.detach(), state.mask)}
        if self.scale_key is not None:
            scale = state.require(f"extras:{self.scale_key}", "kl_penalty")
            if not isinstance(scale, Tensor):
                raise RlobjInputError(f"extras[{self.scale_key!r}]: expected a tensor, got {type(scale).__name__}")
            check_shape(f"extras[{self.scale_key!r}]", scale, (state.mask.shape[0],), "batch")
            kl = kl * scale.to(kl.dtype)[:, None].detach()
        if self.placement == "reward":
            base = state.token_rewards if state.token_rewards is not None else torch.zeros_like(kl)
            return state.update(token_rewards=base - self.beta * kl.detach()).add_metrics(**metrics)
        if self.bias_correction:
            logp_old = state.logp_old if state.logp_old is not None else state.logp.detach()
            kl = kl * torch.where(state.mask, state.logp - logp_old, torch.zeros(())).exp()
        part = LossPart(self.beta * kl, state.mask)
        return state.add_part(f"kl_{self.against}", part).add_metrics(**metrics)


def k1_kl(beta: float = 0.001, **kwargs) -> kl_penalty:
    """``kl_penalty(estimator="k1")``: $\\beta(\\log\\pi_\\theta - \\log\\pi_\\text{ref})$."""
    return kl_penalty(beta=beta, estimator="k1", **kwargs)


def k2_kl(beta: float = 0.001, **kwargs) -> kl_penalty:
    """``kl_penalty(estimator="k2")``: $\\tfrac\\beta2(\\log\\pi_\\theta - \\log\\pi_\\text{ref})^2$."""
    return kl_penalty(beta=beta, estimator="k2", **kwargs)


def k3_kl(beta: float = 0.001, **kwargs) -> kl_penalty:
    """``kl_penalty(estimator="k3")``: $\\beta(e^{d} - d - 1)$, GRPO's KL (beta 0.04 in the paper)."""
    return kl_penalty(beta=beta, estimator="k3", **kwargs)


def abs_kl(beta: float = 0.001, **kwargs) -> kl_penalty:
    """``kl_penalty(estimator="abs")``: $\\beta\\lvert\\log\\pi_\\theta - \\log\\pi_\\text{ref}\\rvert$."""
    return kl_penalty(beta=beta, estimator="abs", **kwargs)


# ---------------------------------------------------------------------------------------------
# full vocabulary: divergences between whole next-token distributions, read through VocabView
# ---------------------------------------------------------------------------------------------
#
# The current policy's view is ``state.vocab``; the other policy's view is
# ``extras["vocab_ref"]`` (``against="ref"``) or ``extras["vocab_init"]`` (``against="init"``),
# a :class:`~rlobj.ops.vocab.VocabView` built the same way (or, for the forward KL only, a
# stored :class:`~rlobj.ops.vocab.TopK`). Each term is evaluated only at valid tokens
# (``mask``) and never builds a ``[tokens, vocab]`` tensor when the views come from hidden
# states. The other policy is a constant: its view is detached.

from rlobj.ops.vocab import JS, KL, FDivergence, TopK, VocabView  # noqa: E402

__all__ += ["forward_kl", "reverse_kl", "js_divergence", "f_divergence", "f_generator",
            "dph_divergence", "GENERATORS"]

AGAINST = ("ref", "init")


def _check_against(term: str, against: str) -> None:
    if against not in AGAINST:
        raise RlobjInputError(f"{term}.against: expected one of {AGAINST}, got {against!r}")


def current_view(state: State, by: str) -> VocabView:
    """``state.vocab`` checked against the batch: a VocabView over ``(batch, seq)``."""
    view = state.vocab
    if view is None:
        raise RlobjInputError(
            f"{by} reads 'vocab', but the state has none. Pass vocab=VocabView.from_hidden("
            "hidden, lm_head.weight) (or VocabView.from_logits(logits)) for the current policy."
        )
    if not isinstance(view, VocabView):
        raise RlobjInputError(f"vocab: expected a VocabView, got {type(view).__name__}")
    if view.shape != tuple(state.mask.shape):
        raise RlobjInputError(
            f"vocab: expected a view of shape (batch seq) = {tuple(state.mask.shape)}, got "
            f"{view.shape} (build one view per micro-batch)"
        )
    return view


def other_view(state: State, key: str, by: str, allow_topk: bool = False):
    """``extras[key]``: a VocabView of the same shape (detached), or a stored TopK if allowed."""
    view = state.extras.get(key)
    if view is None:
        kinds = "a VocabView (or a stored TopK)" if allow_topk else "a VocabView"
        raise RlobjInputError(
            f"{by} reads extras[{key!r}], but the state has none. Pass extras={{{key!r}: ...}} "
            f"with {kinds} of that policy's next-token distributions."
        )
    if isinstance(view, TopK):
        if not allow_topk:
            raise RlobjInputError(
                f"extras[{key!r}]: {by} needs a VocabView (whole distributions); a stored TopK "
                "only supports forward_kl"
            )
        return TopK(view.logprobs.detach(), view.indices)
    if not isinstance(view, VocabView):
        raise RlobjInputError(f"extras[{key!r}]: expected a VocabView, got {type(view).__name__}")
    if view.shape != tuple(state.mask.shape):
        raise RlobjInputError(
            f"extras[{key!r}]: expected a view of shape (batch seq) = {tuple(state.mask.shape)}, "
            f"got {view.shape}"
        )
    return view.detach()


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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


DPH_FORMS = ("forward", "js", "alpha")


@dataclass(frozen=True)
class dph_divergence(Term):
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

    reads: ClassVar[tuple[str, ...]] = ("logp", "mask", "extras:logp_init", "extras:dph_rows")
    writes: ClassVar[tuple[str, ...]] = ("part:dph",)
    form: str = "forward"
    eta: float = 0.01
    alpha: float = 0.2

    def __post_init__(self):
        check_range("dph_divergence", "eta", self.eta, low=0.0)
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
        logp_init = state.require("extras:logp_init", "dph_divergence")
        rows = state.require("extras:dph_rows", "dph_divergence")
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
