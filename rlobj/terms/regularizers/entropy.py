r"""Entropy regularisers: a fixed bonus and a coefficient steered toward a target entropy.

Both read the per-token full-vocabulary entropy $H_{i,t}$ of the current policy, taken from
the ``entropy`` field or computed once, lazily, from the ``vocab`` view. The loss part
``entropy`` is $-c\,H_{i,t}$ (a bonus: minimising it raises entropy); a negative
coefficient turns it into a penalty.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch

from rlobj.algebra.aggregation import seq_mean_token_mean, seq_mean_token_sum, token_mean
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import check_range

__all__ = ["entropy_bonus", "adaptive_entropy"]

#: Aggregation modes a part may name for itself (``entropy_bonus(aggregation=...)``).
_PART_AGGREGATIONS = {"token_mean": token_mean, "seq_mean_token_mean": seq_mean_token_mean,
                      "seq_mean_token_sum": seq_mean_token_sum}


@dataclass(frozen=True)
class entropy_bonus(Term):
    r"""$\ell_{i,t} = -c\,H_{i,t}$ with the full-vocab entropy $H_{i,t} = -\sum_v \pi_\theta(v)\log\pi_\theta(v)$.

    The classic PPO entropy bonus (Schulman et al., arXiv 1707.06347, Eq. 9), used by the
    1-shot RLVR recipe (Wang et al., arXiv 2504.20571, coefficient 0.001 in its loss sign
    convention). verl ``entropy_coeff`` (default 0), TRL has none.

    Args:
        coef: $c$; positive = bonus, negative = penalty.
        aggregation: None (default): the chain's aggregation reduces the entropy part, like
            every other part. ``"token_mean"``, ``"seq_mean_token_mean"`` or
            ``"seq_mean_token_sum"``: that mode reduces it instead, with the same global counts
            (RL-PLUS's reference sums its policy loss over the padded length but averages the
            entropy over tokens: ``rl_plus_recipe``).
    """

    reads: ClassVar[tuple[str, ...]] = ("entropy", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:entropy",)
    coef: float = 0.001
    aggregation: str | None = None

    def __post_init__(self):
        if self.aggregation is not None and self.aggregation not in _PART_AGGREGATIONS:
            raise RlobjInputError(f"entropy_bonus.aggregation: expected None or one of "
                                  f"{sorted(_PART_AGGREGATIONS)}, got {self.aggregation!r}")

    def __call__(self, state: State) -> State:
        entropy = state.token_entropy()
        reducer = None if self.aggregation is None else _PART_AGGREGATIONS[self.aggregation]()
        part = LossPart(-self.coef * entropy, state.mask, aggregation=reducer)
        return state.add_part("entropy", part).add_metrics(
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


# ---------------------------------------------------------------------------------------------
# sampled-token entropy, Lp-Reg, SIREN
# ---------------------------------------------------------------------------------------------

import math  # noqa: E402

from torch import Tensor  # noqa: E402

from rlobj.ops.errors import check_shape  # noqa: E402
from rlobj.ops.vocab import KL, TopK  # noqa: E402
from rlobj.terms.divergences import current_view, kl_estimate  # noqa: E402
from rlobj.terms.lp_reg_proxy import proxy_logp as _proxy_logp  # noqa: E402
from rlobj.terms.siren_entropy import TopPEntropy  # noqa: E402

__all__ += ["sampled_entropy_bonus", "lp_reg", "lp_reg_selection", "lp_reg_proxy_topk", "siren",
            "peak_entropy_mask"]


@dataclass(frozen=True)
class sampled_entropy_bonus(Term):
    r"""$\ell_{i,t} = -c\,\hat H_{i,t}$ with the sampled-token estimator $\hat H_{i,t} = -\log\pi_\theta(y_{i,t})$.

    The entropy term of PAPO (Wang et al., arXiv 2507.06448, double-entropy loss on
    $-\log\pi$) and VPPO (entropy penalty on the sampled tokens); no vocabulary view needed.

    Differences from :class:`entropy_bonus` (full-vocabulary $H$):

    * value: $\mathbb E_{y\sim\pi_\theta}[-\log\pi_\theta(y)] = H$, so $\hat H$ is unbiased
      only in expectation over tokens sampled from the **current** policy (on stale samples
      from $\pi_\text{old}$ it estimates the cross-entropy), and it is noisy per token;
    * gradient: $\nabla(-\log\pi_\theta(y_t))$ has expectation
      $-\sum_v\pi_v\nabla\log\pi_v = 0$ under $y_t\sim\pi_\theta$, whereas
      $\nabla H = -\sum_v \pi_v\log\pi_v\,\nabla\log\pi_v$. Used as a loss it only pushes
      down the probability of the tokens that were sampled (a tested identity).

    Args:
        coef: $c$; positive = bonus (raise $\hat H$), negative = penalty (VPPO's 0.06 penalty
            is ``coef=-0.06``).

    Loss part ``entropy_sampled``; metric ``entropy/sampled``.
    """

    reads: ClassVar[tuple[str, ...]] = ("logp", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:entropy_sampled",)
    coef: float = 0.001

    def __call__(self, state: State) -> State:
        estimate = -state.logp
        part = LossPart(-self.coef * estimate, state.mask)
        return state.add_part("entropy_sampled", part).add_metrics(
            **{"entropy/sampled": masked_mean(estimate.detach(), state.mask)}
        )


LP_SCOPES = ("micro_batch", "sequence")
LP_KL = ("k3_sampled", "forward_full")


def _lowest_k(scores: Tensor, candidates: Tensor, rho: float, quirk: bool) -> Tensor:
    """The $k$ lowest-scoring candidates (flat, stable: earlier index first on ties)."""
    count = int(candidates.sum())
    k = int(rho * count)  # the reference's int(): floor for the non-negative product
    if quirk:
        k = k if k > 1 else 0  # reference: max(1, k), then the branch runs only if k > 1
    elif rho > 0 and count > 0:
        k = max(1, k)
    selected = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k == 0:
        return selected.view(scores.shape)
    flat = torch.where(candidates, scores, torch.full_like(scores, math.inf)).flatten()
    selected[torch.sort(flat, stable=True).indices[:k]] = True
    return selected.view(scores.shape) & candidates


def lp_reg_selection(logp: Tensor, logp_proxy: Tensor, advantages: Tensor, mask: Tensor,
                     rho: float = 0.01, scope: str = "micro_batch",
                     strict_reference_quirk: bool = True) -> Tensor:
    r"""Lp-Reg's regularised set $R$ (spec §1.2): among valid tokens with $A < 0$, the
    $k = \lfloor\rho\,|N^-|\rfloor$ with the lowest current $\log\pi_\theta$, kept where
    $\pi_\theta < \pi_\text{proxy}$ (strict).

    ``scope="micro_batch"`` counts $N^-$ over the tensor (the reference: the micro-batch);
    ``"sequence"`` per row. ``strict_reference_quirk=True`` selects nothing when $k \le 1$
    (the reference runs the branch only for $k > 1$); False uses $\max(1, k)$ when $\rho > 0$.
    Ties in $\log\pi_\theta$ are broken by position. Everything is detached.
    """
    if scope not in LP_SCOPES:
        raise RlobjInputError(f"lp_reg.selection_scope: expected one of {LP_SCOPES}, got {scope!r}")
    logp, logp_proxy = logp.detach().float(), logp_proxy.detach().float()
    negatives = mask & (advantages.detach() < 0)
    if scope == "sequence":
        lowest = torch.stack([_lowest_k(logp[i], negatives[i], rho, strict_reference_quirk)
                              for i in range(logp.shape[0])]) if logp.shape[0] else negatives.clone()
    else:
        lowest = _lowest_k(logp, negatives, rho, strict_reference_quirk)
    return lowest & (logp < logp_proxy)


def lp_reg_proxy_topk(topk: TopK, tau: float = 0.02, mode: str = "minp") -> TopK:
    r"""Filter a stored top-k of $\pi_\text{old}$ (full-vocabulary log-probs, ``"batch seq k"``)
    to Lp-Reg's kept set: ``"minp"`` keeps $\log\pi \ge \max\log\pi + \log\tau$, ``"fixed"``
    keeps $\log\pi \ge \log\tau$. Dropped entries get log-prob $-10^4$, so the TopK's
    renormalisation gives the proxy $\pi_\text{proxy}$ on the kept set. Exact when $k$ covers
    the kept set (check: the k-th entry is dropped). When ``"fixed"`` keeps nothing, the
    reference's proxy is uniform over the vocabulary, which a top-k cannot hold: the row becomes
    uniform over its $k$ stored ids (an approximation; :class:`~rlobj.terms.lp_reg_proxy.ProxyLogProb`
    gives the exact $-\log V$)."""
    logprobs = topk.logprobs.detach().float()
    top = logprobs.max(dim=-1, keepdim=True).values
    log_tau = math.log(tau) if tau > 0 else -math.inf
    threshold = top + log_tau if mode == "minp" else torch.full_like(top, log_tau)
    keep = logprobs >= threshold
    kept = torch.where(keep, logprobs, torch.full_like(logprobs, -1e4))
    empty = ~keep.any(dim=-1, keepdim=True)
    return TopK(torch.where(empty, torch.zeros_like(kept), kept), topk.indices)


@dataclass(frozen=True)
class lp_reg(Term):
    r"""Low-probability Regularization (Lp-Reg): protect low-probability negative-advantage
    tokens by pulling them toward a filtered proxy of the old policy. **Not additive**: it
    replaces the clipped policy loss on the tokens it selects.

    Proxy (spec §1.1): $\pi_\text{proxy}(v) = \pi_\text{old}(v)\,\mathbb 1[v\in K_t] / Z_t$ with
    $K_t = \{v: \pi_\text{old}(v) \ge \tau\max_u\pi_\text{old}(u)\}$ (``mode="minp"``) or
    $\{v: \pi_\text{old}(v) \ge \tau\}$ (``"fixed"``; uniform over the vocabulary when no token
    reaches $\tau$, as the reference's all-filtered softmax), decided on the raw logits
    (temperature 1); the trainer's ``LpRegProxy`` renormalises the kept logits at the rollout
    temperature as the reference does (identical at temperature 1). Selected set $R$: see
    :func:`lp_reg_selection`. On $R$ the policy part becomes

    $$ \ell_{i,t} = -A_{i,t}\,\rho_{i,t} + \beta\,\big(e^{d} - d - 1\big), \qquad
       d = \log\pi_\text{proxy}(y_{i,t}) - \log\pi_\theta(y_{i,t}), $$

    the unclipped surrogate plus the sampled k3 estimate (``kl="k3_sampled"``, the reference
    code; clamps as :func:`kl_estimate`). On $R$, $\pi_\theta < \pi_\text{proxy}$, so the
    penalty's gradient $\beta(1 - \pi_\text{proxy}/\pi_\theta) < 0$ on $\log\pi_\theta$ raises
    the token's probability. Everywhere else the policy part is left as it was.
    ``kl="forward_full"`` uses $\beta\,\mathrm{KL}(\pi_\text{proxy}\Vert\pi_\theta)$ over the
    vocabulary instead (an option named by third-party summaries, not the reference).

    Inputs: ``extras["logp_proxy"]`` (``"batch seq"``, $\log\pi_\text{proxy}(y_t)$, computed by
    the trainer once per rollout batch; filtered tokens hold about $-10^4$), or else
    ``extras["vocab_old"]`` (a VocabView of $\pi_\text{old}$ at temperature 1) with the sampled
    ids ``extras["tokens"]``, from which it is computed with ``proxy_logp``. ``forward_full``
    also needs ``vocab`` (the current policy) and ``extras["proxy_topk"]``, a stored
    :class:`~rlobj.ops.vocab.TopK` of $\pi_\text{old}$ covering the kept set (filtered with
    :func:`lp_reg_proxy_topk`).

    It reads and rewrites ``part:policy``, so it must come after the surrogate:
    ``grpo >> lp_reg(0.02)`` works, ``lp_reg(0.02) >> grpo`` is refused when built.

    Args:
        tau: $\tau$, the (relative) threshold (reference ``minp_p_threshold`` 0.02).
        rho: $\rho$, fraction of negative-advantage tokens considered (0.01 for the Qwen3-14B
            recipes, 0.005 for Qwen2.5-32B).
        beta: $\beta$ (``ppo_kl_coef`` 1.0).
        mode: ``"minp"`` (reference) or ``"fixed"``.
        selection_scope: ``"micro_batch"`` (reference) or ``"sequence"``.
        kl: ``"k3_sampled"`` (reference) or ``"forward_full"``.
        strict_reference_quirk: select nothing when $\lfloor\rho|N^-|\rfloor \le 1$ (reference).
        log_ratio_clamp: bound on $|\log\rho_{i,t}|$ before ``exp``.

    References:
        Huang et al., "Low-probability Tokens Sustain Exploration in Reinforcement Learning
        with Verifiable Reward", arXiv 2510.03222; reference code ``compute_policy_loss_lp_reg``
        (recipes: clip $[0, 10]$, token-mean, GRPO advantages, no entropy bonus or ref KL).

    Example:
        >>> from rlobj import grpo, lp_reg, forward_kl
        >>> objective = grpo >> lp_reg(0.02) >> forward_kl(0.01)
    """

    tau: float = 0.02
    rho: float = 0.01
    beta: float = 1.0
    mode: str = "minp"
    selection_scope: str = "micro_batch"
    kl: str = "k3_sampled"
    strict_reference_quirk: bool = True
    log_ratio_clamp: float = 20.0

    def __post_init__(self):
        check_range("lp_reg", "rho", self.rho, low=0.0, high=1.0)
        check_range("lp_reg", "beta", self.beta, low=0.0)
        check_range("lp_reg", "log_ratio_clamp", self.log_ratio_clamp, low=0.0, low_open=True)
        if self.mode not in ("minp", "fixed"):
            raise RlobjInputError(f"lp_reg.mode: expected 'minp' or 'fixed', got {self.mode!r}")
        high = 1.0 if self.mode == "minp" else None
        check_range("lp_reg", "tau", self.tau, low=0.0, high=high)
        if self.selection_scope not in LP_SCOPES:
            raise RlobjInputError(f"lp_reg.selection_scope: expected one of {LP_SCOPES}, got {self.selection_scope!r}")
        if self.kl not in LP_KL:
            raise RlobjInputError(f"lp_reg.kl: expected one of {LP_KL}, got {self.kl!r}")

    def slots_read(self) -> frozenset[str]:
        reads = {"part:policy", "logp", "logp_old", "advantages", "mask", "extras:logp_proxy"}
        if self.kl == "forward_full":
            reads |= {"vocab", "extras:proxy_topk"}
        return frozenset(reads)

    def slots_written(self) -> frozenset[str]:
        return frozenset({"part:policy"})

    def proxy_logp(self, state: State) -> Tensor:
        """$\\log\\pi_\\text{proxy}(y_t)$: ``extras["logp_proxy"]`` or from ``extras["vocab_old"]``."""
        proxy = state.extras.get("logp_proxy")
        if proxy is None:
            view, tokens = state.extras.get("vocab_old"), state.extras.get("tokens")
            if view is None or tokens is None:
                raise RlobjInputError(
                    "lp_reg reads extras['logp_proxy'] (the proxy log-prob of each sampled token, "
                    "computed once per rollout batch), or extras['vocab_old'] (a VocabView of the "
                    "old policy) together with extras['tokens'] (the sampled ids); the state has "
                    "neither."
                )
            proxy = _proxy_logp(view.detach(), tokens, self.tau, self.mode, mask=state.mask)
        check_shape("extras['logp_proxy']", proxy, tuple(state.mask.shape), "batch seq")
        return torch.where(state.mask, proxy.detach(), torch.zeros((), dtype=proxy.dtype))

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy", "lp_reg")
        advantages = state.require("advantages", "lp_reg")
        logp_old = state.require("logp_old", "lp_reg")
        proxy = self.proxy_logp(state)
        selected = lp_reg_selection(state.logp, proxy, advantages, state.mask, self.rho,
                                    self.selection_scope, self.strict_reference_quirk)
        ratio = torch.clamp(state.logp - logp_old, -self.log_ratio_clamp, self.log_ratio_clamp).exp()
        if self.kl == "k3_sampled":
            # q = proxy, p = pi_theta: kl_estimate(logp, logp_ref=proxy) = e^d - d - 1
            penalty = kl_estimate(state.logp, proxy.to(state.logp.dtype), "k3")
        else:
            topk = state.require("extras:proxy_topk", "lp_reg")
            if not isinstance(topk, TopK):
                raise RlobjInputError(f"extras['proxy_topk']: expected a TopK, got {type(topk).__name__}")
            filtered = lp_reg_proxy_topk(topk, self.tau, self.mode)
            (penalty,) = current_view(state, "lp_reg").evaluate(KL(filtered, "forward"), mask=selected)
        replaced = -advantages * ratio + self.beta * penalty
        values = torch.where(selected, replaced.to(policy.values.dtype), policy.values)
        zero = torch.zeros((), dtype=penalty.dtype)
        count = selected.sum()
        return state.add_part("policy", policy.replace(values=values)).add_metrics(**{
            "lp_reg/selected_frac": masked_mean(selected.float(), state.mask),
            "lp_reg/selected_count": count.float(),
            "lp_reg/penalty": torch.where(selected, penalty.detach(), zero).sum() / count.clamp(min=1),
        })


def peak_entropy_mask(values: Tensor, mask: Tensor, quantile: float = 0.8) -> Tensor:
    r"""SIREN's per-sequence peak mask (spec §3.2): $H_{i,t} > q_i$ with $q_i$ the
    ``quantile`` of row $i$'s valid values (linear interpolation, as ``numpy``/``torch``
    ``nanquantile``); rows without valid tokens select nothing. For distinct values this keeps
    $\lceil (1-q)(L_i - 1)\rceil$ tokens of an $L_i$-token row."""
    scores = torch.where(mask, values.detach().float(), torch.full_like(values, math.nan, dtype=torch.float32))
    if scores.shape[-1] == 0:
        return mask.clone()
    cut = torch.nanquantile(scores, quantile, dim=-1, keepdim=True)
    return mask & (scores > cut)


@dataclass(frozen=True)
class siren(Term):
    r"""SIREN: a self-anchored regulariser on the top-p entropy of the peak-entropy tokens.

    $$ \bar H(\theta) = \frac{1}{S}\sum_i \frac{1}{|M_i|}\sum_{t\in M_i} H^p_{i,t}, \qquad
       \mathcal R = \big(\bar H(\theta) - H_\text{anc}\big)^2, \qquad
       \text{loss} \mathrel{+}= \lambda\,\mathcal R, $$

    with $H^p_{i,t}$ the nucleus entropy renormalised inside the top-$p$ set (strictly below
    $p$, inside the ``top_k`` largest logits, see :class:`~rlobj.terms.siren_entropy.TopPEntropy`), $M_i$ the tokens of response $i$ with
    $H^p > $ the row's ``quantile`` (:func:`peak_entropy_mask`, no gradient through it), $S$
    the responses of the micro-batch (a row with no peak token contributes 0). The anchor
    $H_\text{anc}$ is $\bar H$ of the **first rollout batch** under the initial policy, as in the
    reference (``ray_trainer.py`` at ``global_steps == 1``, over the whole batch): in the trainer
    the ``SirenAnchor`` provider computes it once, over all rows and ranks, and gives it as
    ``extras["siren_anchor"]`` (0-dim); the term stores it as term state at its first call and
    returns it unchanged afterwards (never mutated). Called directly without that extra, the
    anchor is the first call's $\bar H$ (detached; then $\mathcal R = 0$ at the first call).
    ``anchor=`` fixes it instead. $d\mathcal R/d\bar H = 2(\bar H - H_\text{anc})$ pulls the
    entropy back to the anchor from both sides.

    $\lambda\mathcal R$ is a function of a batch mean, not a per-token loss: the term writes a
    ``"scalar"`` loss part, which every aggregation adds as is, weighted (with a global
    :class:`~rlobj.algebra.state.Normalizer`) by the micro-batch's share of the sequences
    (times the data-parallel world size).

    Micro-batches (``scope="batch"``, default): the trainer's mini-batch statistics
    (:meth:`minibatch_stats`) give $\bar H$ of the whole optimizer mini-batch (detached, all
    micro-batches and ranks, $S$ its non-empty responses) and the peak masks. A micro-batch
    $k$ then contributes, by linearisation at $\bar H$,

    $$ \tfrac{|k|}{S}\,f(\bar H) + f'(\bar H)\,\frac{1}{S}\sum_{i\in k}\big(h_i(\theta) - \mathrm{sg}[h_i]\big),
       \qquad f(H) = \lambda (H - H_\text{anc})^2, $$

    ($h_i$ the row's peak mean), whose sum over micro-batches has the value and the gradient
    of $\lambda\mathcal R(\bar H(\theta))$ on the whole mini-batch exactly. Called directly
    without the statistics, $\bar H$ is the call's. ``scope="micro_batch"`` is the reference's gradient
    accumulation: $\lambda(\bar H_k - H_\text{anc})^2$ of each micro-batch's own mean,
    averaged over micro-batches; the gradient then depends on the micro-batch size (the
    square of a mean is not the mean of squares).

    Args:
        p: top-p mass of the nucleus (``entropy_topp`` 0.8).
        quantile: lower quantile of the per-sequence mask (``mask_ratio`` 0.8: top 20%).
        coef: $\lambda$ (``entropy_coeff`` 0.005).
        anchor: a fixed $H_\text{anc}$, or None: ``extras["siren_anchor"]`` (the first rollout
            batch, from the trainer), else the first call's $\bar H$.
        scope: ``"batch"`` (default, exact under micro-batching) or ``"micro_batch"``
            (the reference's per-micro-batch regulariser).
        top_k: the nucleus lives inside the ``top_k`` largest logits (``entropy_topk`` 10000);
            None: the whole vocabulary.

    References:
        "Rethinking Entropy Regularization in Large Reasoning Models", arXiv 2509.25133 (SIREN);
        reference code ``dp_actor.py`` (``experiment_type == "siren"``), base Dr. GRPO with
        the mask acting only on the regulariser.
    """

    reads: ClassVar[tuple[str, ...]] = ("vocab", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:siren",)
    minibatch_stats_additive: ClassVar[bool] = True
    p: float = 0.8
    quantile: float = 0.8
    coef: float = 0.005
    anchor: float | None = None
    scope: str = "batch"
    top_k: int | None = 10000

    def __post_init__(self):
        check_range("siren", "p", self.p, low=0.0, high=1.0, low_open=True)
        if self.top_k is not None:
            check_range("siren", "top_k", self.top_k, low=1)
        check_range("siren", "quantile", self.quantile, low=0.0, high=1.0)
        check_range("siren", "coef", self.coef, low=0.0)
        if self.scope not in ("batch", "micro_batch"):
            raise RlobjInputError(f"siren.scope: expected 'batch' or 'micro_batch', got {self.scope!r}")

    def has_minibatch_stats(self) -> bool:
        return self.scope == "batch"

    def slots_read(self) -> frozenset[str]:
        return frozenset(self.reads) | (frozenset({"extras:siren_anchor"}) if self.anchor is None else frozenset())

    def row_means(self, view, mask: Tensor, peak: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """$h_i$, each row's mean top-p entropy over its peak tokens (0 without any), and the
        peaks, from a vocab view (the trainer's ``SirenAnchor`` calls it on the old policy)."""
        (entropy,) = view.evaluate(TopPEntropy(self.p, self.top_k), mask=mask)
        if peak is None:
            peak = peak_entropy_mask(entropy, mask, self.quantile)
        counts = peak.sum(-1).clamp(min=1).to(entropy.dtype)
        return torch.where(peak, entropy, torch.zeros((), dtype=entropy.dtype)).sum(-1) / counts, peak

    def _row_means(self, state: State, peak: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.row_means(current_view(state, "siren"), state.mask, peak)

    def mean_entropy(self, state: State) -> tuple[Tensor, Tensor]:
        r"""$(\bar H(\theta), M)$ of this (micro-)batch."""
        per_row, peak = self._row_means(state)
        rows = state.mask.any(-1).sum().clamp(min=1).to(per_row.dtype)
        return per_row.sum() / rows, peak

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        r"""``sum`` ($\sum_i h_i$ over the mini-batch's rows, 0-dim), ``rows`` (non-empty rows,
        0-dim) and ``peak`` (``[batch, seq]`` bool, per row): additive over rows, so under data
        parallelism each rank computes them on its rows and the sums are added across ranks;
        $\bar H$ = ``sum / rows``."""
        if not self.has_minibatch_stats():
            return {}
        per_row, peak = self._row_means(state)
        rows = state.mask.any(-1).sum().to(per_row.dtype)
        return {"sum": per_row.sum().detach(), "rows": rows, "peak": peak}

    def __call__(self, state: State) -> State:
        total = state.own_stats("sum") if self.has_minibatch_stats() else None
        if total is None:
            mean, peak = self.mean_entropy(state)
            local = None
        else:
            per_row, peak = self._row_means(state, state.own_stats("peak"))
            mean = total.to(per_row.dtype) / state.own_stats("rows").to(per_row.dtype).clamp(min=1)
            local = per_row.sum() / state.mask.any(-1).sum().clamp(min=1).to(per_row.dtype)
        stored = state.own_state(None)
        anchor = self.anchor if self.anchor is not None else stored
        if anchor is None:
            given = state.extras.get("siren_anchor")
            anchor = float(given) if given is not None else float(mean.detach())
            state = state.set_own_state(anchor)
        regulariser = (mean - anchor) ** 2
        value = self.coef * regulariser
        if local is not None:  # linearised at the mini-batch mean: exact under micro-batching
            value = value + 2 * self.coef * (mean - anchor) * (local - local.detach())
        part = LossPart(value, state.mask, "scalar")
        return state.add_part("siren", part).add_metrics(**{
            "siren/entropy": mean.detach(), "siren/anchor": anchor,
            "siren/regularizer": regulariser.detach(),
            "siren/peak_frac": masked_mean(peak.float(), state.mask),
        })
