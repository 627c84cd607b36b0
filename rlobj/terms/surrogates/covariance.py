r"""Covariance-based clipping: Clip-Cov and KL-Cov (Cui et al., "The Entropy Mechanism of
Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617, Sec. 4).

Both choose a few tokens by the per-token covariance between advantage and log-probability
(:func:`token_covariance`). The choice is batch-wide: by default (``scope="batch"``) it is made
once per optimizer mini-batch, over all its micro-batches and data-parallel ranks, from the
trainer's mini-batch statistics (:meth:`~rlobj.algebra.term.Term.minibatch_stats`), so
micro-batching changes no gradient; called directly on one batch, over the tokens of the call.
``scope="micro_batch"`` is verl's reference behaviour: covariance means, count and (Clip-Cov)
random draw per micro-batch on each rank, so the gradient depends on the micro-batch size.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import Fraction, NonNegative, OpenFraction, Positive
from rlobj.algebra.state import LossPart, State
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean
from rlobj.terms.surrogates._base import _log_ratio, _policy, _ppo_loss, _ratio_metrics, _Surrogate

__all__ = ["token_covariance", "clip_cov", "kl_cov", "COV_SCOPES"]

#: Where the covariance selection is made: the whole mini-batch (default) or each call (verl).
COV_SCOPES = ("batch", "micro_batch")


def _check_scope(term: str, scope: str) -> None:
    if scope not in COV_SCOPES:
        raise RlobjInputError(f"{term}.scope: expected one of {COV_SCOPES}, got {scope!r}")


def token_covariance(logp: Tensor, advantages: Tensor, mask: Tensor,
                     means: tuple[Tensor | float, Tensor | float] | None = None) -> Tensor:
    r"""Per-token centred product $\mathrm{Cov}_{i,t} = (A_{i,t} - \bar A)(\log\pi_\theta(y_{i,t}) - \overline{\log\pi_\theta})$.

    Means $\bar A$, $\overline{\log\pi_\theta}$ over the valid tokens of the call (verl: the
    micro-batch), or ``means = (mean_advantage, mean_logp)`` given (the mini-batch's, from the
    mini-batch statistics). Detached; 0 on padding. Its mean is the covariance that drives the
    change of entropy under a policy-gradient step (Cui et al., arXiv 2505.22617, Eq. 5-8):
    tokens with a large positive value are confident and rewarded (or unlikely and penalised),
    and updating them lowers entropy.
    """
    logp, advantages = logp.detach(), advantages.detach()
    if means is None:
        means = (masked_mean(advantages, mask), masked_mean(logp, mask))
    mean_adv, mean_logp = (torch.as_tensor(m, dtype=logp.dtype, device=logp.device) for m in means)
    centred = (advantages - mean_adv) * (logp - mean_logp)
    return torch.where(mask, centred, torch.zeros((), dtype=centred.dtype))


def _means(state: State, advantages: Tensor) -> dict[str, Tensor]:
    return {"adv_mean": masked_mean(advantages.detach(), state.mask),
            "logp_mean": masked_mean(state.logp.detach(), state.mask)}


def _stats_means(state: State) -> tuple[Tensor, Tensor] | None:
    adv, logp = state.own_stats("adv_mean"), state.own_stats("logp_mean")
    return None if adv is None or logp is None else (adv, logp)


class clip_cov(_Surrogate):
    r"""Clip-Cov: PPO clip, plus the gradient of a few random high-covariance tokens removed.

    $$\ell_{i,t} = (1 - c_{i,t})\,\max\big(-A\rho,\; -A\,\mathrm{clip}(\rho, 1-\varepsilon_l, 1+\varepsilon_h)\big)$$

    where $c_{i,t} = 1$ on $\max(1, \lfloor rN\rfloor)$ tokens drawn uniformly at random
    (without replacement) from the valid tokens that PPO did not clip already and whose
    :func:`token_covariance` lies strictly inside $(\omega_\text{low}, \omega_\text{high})$;
    $N$ = valid tokens of the mini-batch (``scope="batch"``) or of the call
    (``"micro_batch"``). Selected tokens contribute neither value nor gradient; the
    normaliser keeps them (verl multiplies their loss by 0). Fewer candidates than the count
    selects all of them.

    Args:
        ratio: $r$, fraction of tokens detached (verl ``clip_cov_ratio`` 2e-4).
        cov_low: $\omega_\text{low}$ (verl ``clip_cov_lb`` 1.0).
        cov_high: $\omega_\text{high}$ (verl ``clip_cov_ub`` 5.0).
        eps_low, eps_high: PPO clip of the other tokens: 1.0 / 1.0, the authors' Clip-Cov
            recipes (verl ``recipe/entropy/*clip_cov.sh``, from PRIME-RL/Entropy-Mechanism-of-
            Reasoning-RL, set ``clip_ratio_low=1``, ``clip_ratio_high=1``: ratio clipped to $[0, 2]$, so the
            covariance detachment does the work); verl's generic default is 0.2.
        seed: an int (default 0) draws the subset from a generator seeded with ``seed`` and
            a counter kept as term state (reproducible, resumes from a checkpoint): with the
            mini-batch statistics the draw is made once per mini-batch, and the counter
            advances once per mini-batch (the trainer keeps the term state of the mini-batch's
            last micro-batch); called directly, once per call. None draws from torch's global
            RNG, exactly as verl's ``torch.randperm``.
        scope: ``"batch"`` (default): covariance means, count, candidates and random draw
            over the whole mini-batch (exact under micro-batching); ``"micro_batch"``: verl's
            reference behaviour, all of them per call on each rank, so the gradient depends
            on the micro-batch size and the number of ranks.

    Returns:
        part ``"policy"``; metrics ``clip_frac`` (PPO), ``clip_cov/frac`` (share of valid
        tokens detached), ``clip_cov/candidates_frac``.

    References:
        Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
        Models", arXiv 2505.22617, Sec. 4 (Clip-Cov; $r = 2\cdot10^{-4}$, $\omega_\text{low} = 1$,
        $\omega_\text{high} = 5$). Defaults from verl ``trainer/config/actor/actor.yaml``
        (``policy_loss``) and ``compute_policy_loss_clip_cov`` in ``trainer/ppo/core_algos.py``.

    Warning:
        verl computes the covariance, the count and the random draw per micro-batch on each
        rank; ``scope="micro_batch"`` reproduces it.
    """

    ratio: OpenFraction = 2e-4
    cov_low: float = 1.0
    cov_high: float = 5.0
    eps_low: Fraction = 1.0
    eps_high: NonNegative = 1.0
    seed: int | None = 0
    scope: str = "batch"

    def __post_init__(self):
        if not self.cov_high > self.cov_low:
            raise RlobjInputError(f"clip_cov: expected cov_low < cov_high, got cov_low={self.cov_low}, "
                                  f"cov_high={self.cov_high}")
        _check_scope("clip_cov", self.scope)

    def has_minibatch_stats(self) -> bool:
        return self.scope == "batch"

    def _band(self, state: State, advantages: Tensor, means) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(loss, PPO-clipped flags, log-ratio, candidate band) of the state's tokens."""
        log_ratio = _log_ratio(state, "clip_cov", 20.0)
        loss, clipped = _ppo_loss(log_ratio.exp(), advantages, self.eps_low, self.eps_high, None)
        covariance = token_covariance(state.logp, advantages, state.mask, means)
        band = state.mask & ~clipped.detach() & (covariance > self.cov_low) & (covariance < self.cov_high)
        return loss, clipped, log_ratio, band

    def _draw(self, band: Tensor, mask: Tensor, calls: int) -> Tensor:
        """$\\max(1, \\lfloor rN\rfloor)$ candidates drawn without replacement (all when fewer)."""
        candidates = band.flatten().nonzero().squeeze(-1)
        count = max(1, int(self.ratio * int(mask.sum())))
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed * 1_000_003 + calls)
        chosen = candidates[torch.randperm(candidates.numel(), generator=generator)[:count].to(candidates.device)]
        detached = torch.zeros(band.numel(), dtype=torch.bool, device=band.device)
        detached[chosen] = True
        return detached.view(band.shape)

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        """``detached`` (``[batch, seq]`` bool: the tokens drawn over the mini-batch) and the
        covariance means ``adv_mean``, ``logp_mean`` (0-dim)."""
        if not self.has_minibatch_stats():
            return {}
        advantages = state.require("advantages")
        means = _means(state, advantages)
        *_, band = self._band(state, advantages, (means["adv_mean"], means["logp_mean"]))
        return {"detached": self._draw(band, state.mask, state.own_state(0)), **means}

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        detached = state.own_stats("detached") if self.has_minibatch_stats() else None
        means = _stats_means(state) if detached is not None else None
        loss, clipped, log_ratio, band = self._band(state, advantages, means)
        calls = state.own_state(0)
        if detached is None:
            detached = self._draw(band, state.mask, calls)
        metrics = _ratio_metrics(state, log_ratio, clipped)
        metrics.update({"clip_cov/frac": masked_mean(detached.float(), state.mask),
                        "clip_cov/candidates_frac": masked_mean(band.float(), state.mask)})
        state = state.add_part("policy", LossPart(loss, state.mask & ~detached)).add_metrics(**metrics)
        return state if self.seed is None else state.set_own_state(calls + 1)


class kl_cov(_Surrogate):
    r"""KL-Cov: unclipped ratio surrogate plus a KL penalty on the top-covariance tokens.

    $$\ell_{i,t} = -A_{i,t}\,\rho_{i,t} + \beta\,k_{i,t}\,\big|\log\pi_\theta(y_{i,t}) - \log\pi_\text{old}(y_{i,t})\big|$$

    where $k_{i,t} = 1$ on the $\max(1, \lfloor kN\rfloor)$ valid tokens with the largest
    :func:`token_covariance` (ties: earlier position first), $N$ = valid tokens of the mini-batch
    (``scope="batch"``; recomputed for every mini-batch from the current policy, so every PPO
    epoch selects anew) or of the call (``"micro_batch"``).
    No PPO clip anywhere: the penalty keeps the few tokens that drive entropy down close to
    the old policy. The penalty is part of the ``"policy"`` loss (masks applied after it also
    remove it), as in verl.

    Args:
        ratio: $k$, fraction of tokens penalised (verl ``kl_cov_ratio`` 2e-4; the paper's
            Qwen2.5-7B recipe 2e-3).
        beta: $\beta$ (verl ``ppo_kl_coef``; 1.0 is the value of ``compute_policy_loss_kl_cov``'s
            fallback and of the paper's recipes; verl's ``actor.yaml`` sets 0.1).
        log_ratio_clamp: bound on $|\log\rho|$ before ``exp``.
        scope: ``"batch"`` (default: selection over the whole mini-batch, exact under
            micro-batching) or ``"micro_batch"`` (verl: covariance means, count and top tokens
            per call on each rank; the gradient then depends on the micro-batch size).

    Returns:
        part ``"policy"``; metrics ``kl_cov/frac``, ``kl_cov/abs_kl`` (mean
        $|\log\rho|$ over valid tokens) and the ratio metrics.

    References:
        Cui et al., arXiv 2505.22617, Sec. 4 (KL-Cov). verl ``compute_policy_loss_kl_cov``
        (``trainer/ppo/core_algos.py``) and ``policy_loss`` defaults in ``actor.yaml``.
    """

    ratio: OpenFraction = 2e-4
    beta: NonNegative = 1.0
    log_ratio_clamp: Positive = 20.0
    scope: str = "batch"

    def __post_init__(self):
        _check_scope("kl_cov", self.scope)

    def has_minibatch_stats(self) -> bool:
        return self.scope == "batch"

    def _select(self, state: State, advantages: Tensor, means=None) -> Tensor:
        covariance = token_covariance(state.logp, advantages, state.mask, means)
        count = max(1, int(self.ratio * int(state.mask.sum())))
        return _top_count(covariance, state.mask, count)

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        """``selected`` (``[batch, seq]`` bool): the top-covariance tokens of the mini-batch."""
        if not self.has_minibatch_stats():
            return {}
        return {"selected": self._select(state, state.require("advantages"))}

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        log_ratio = _log_ratio(state, "kl_cov", self.log_ratio_clamp)
        selected = state.own_stats("selected") if self.has_minibatch_stats() else None
        if selected is None:
            selected = self._select(state, advantages)
        penalty = torch.where(selected, self.beta * log_ratio.abs(), torch.zeros((), dtype=log_ratio.dtype))
        loss = -advantages * log_ratio.exp() + penalty
        metrics = _ratio_metrics(state, log_ratio)
        metrics.update({"kl_cov/frac": masked_mean(selected.float(), state.mask),
                        "kl_cov/abs_kl": masked_mean(log_ratio.detach().abs(), state.mask)})
        return _policy(state, loss, **metrics)


def _top_count(scores: Tensor, mask: Tensor, count: int) -> Tensor:
    """The ``count`` highest valid scores (all valid ones when fewer); ties by earlier flat index."""
    flat = torch.where(mask, scores, torch.full_like(scores, -torch.inf)).flatten()
    order = torch.sort(flat, descending=True, stable=True).indices[: min(count, int(mask.sum()))]
    selected = torch.zeros(flat.numel(), dtype=torch.bool, device=mask.device)
    selected[order] = True
    return selected.view(mask.shape)
