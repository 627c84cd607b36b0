"""Lp-Reg: low-probability regularization (Huang et al., "Low-probability Tokens Sustain
Exploration in Reinforcement Learning with Verifiable Reward", arXiv 2510.03222).

:class:`lp_reg` rewrites the ``"policy"`` part on the tokens it selects (:func:`lp_reg_selection`),
pulling them toward a filtered proxy of the old policy; the proxy's log-probability is the
vocabulary query in :mod:`rlobj.terms.regularizers.lp_reg_proxy`.
"""

import math

import torch
from torch import Tensor

from rlobj.algebra.contract import Fraction, NonNegative, Positive
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import masked_mean
from rlobj.ops.vocab import KL, TopK
from rlobj.terms._common import check_range
from rlobj.terms._views import current_view
from rlobj.terms.divergences.sampled_kl import kl_estimate
from rlobj.terms.regularizers.lp_reg_proxy import proxy_logp as _proxy_logp

__all__ = ["lp_reg_selection", "lp_reg_proxy_topk", "lp_reg"]


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
    uniform over its $k$ stored ids (an approximation; :class:`~rlobj.terms.regularizers.lp_reg_proxy.ProxyLogProb`
    gives the exact $-\log V$)."""
    logprobs = topk.logprobs.detach().float()
    top = logprobs.max(dim=-1, keepdim=True).values
    log_tau = math.log(tau) if tau > 0 else -math.inf
    threshold = top + log_tau if mode == "minp" else torch.full_like(top, log_tau)
    keep = logprobs >= threshold
    kept = torch.where(keep, logprobs, torch.full_like(logprobs, -1e4))
    empty = ~keep.any(dim=-1, keepdim=True)
    return TopK(torch.where(empty, torch.zeros_like(kept), kept), topk.indices)


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
    rho: Fraction = 0.01
    beta: NonNegative = 1.0
    mode: str = "minp"
    selection_scope: str = "micro_batch"
    kl: str = "k3_sampled"
    strict_reference_quirk: bool = True
    log_ratio_clamp: Positive = 20.0

    def __post_init__(self):
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
        policy = state.require_part("policy")
        advantages = state.require("advantages")
        logp_old = state.require("logp_old")
        proxy = self.proxy_logp(state)
        selected = lp_reg_selection(state.logp, proxy, advantages, state.mask, self.rho,
                                    self.selection_scope, self.strict_reference_quirk)
        ratio = torch.clamp(state.logp - logp_old, -self.log_ratio_clamp, self.log_ratio_clamp).exp()
        if self.kl == "k3_sampled":
            # q = proxy, p = pi_theta: kl_estimate(logp, logp_ref=proxy) = e^d - d - 1
            penalty = kl_estimate(state.logp, proxy.to(state.logp.dtype), "k3")
        else:
            topk = state.require("extras:proxy_topk")
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
