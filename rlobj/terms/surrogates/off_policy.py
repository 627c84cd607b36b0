r"""Surrogates for tokens that were not sampled by the policy in the context it is trained for.

* :class:`hint_clip_ratio` (Guide): a guided response was sampled with a hint in the context;
  the policy is trained for the context without it.
* :class:`mis_exploration_pg` (RL-PLUS): external demonstrations mixed into the group, weighted
  by a multiple-importance-sampling ratio and an exploration-based advantage.

Both write the ``"policy"`` part in place of ``clip_ratio`` (``grpo.replace(clip_ratio, ...)``).
Notation as in :mod:`rlobj.terms.surrogates`: $\rho = \pi_\theta/\pi_\text{old}$, $\mathrm{sg}$
is stop-gradient.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import Fraction, NonNegative, Positive
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_finite
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import check_range
from rlobj.terms._common import require_extra as _extra

__all__ = ["hint_clip_ratio", "mis_exploration_pg"]


class hint_clip_ratio(Term,
                      reads=("logp", "logp_old", "advantages", "mask", "extras:guided",
                                        "extras:logp_old_hint"),
                      writes=("part:policy",)):
    r"""Guide: PPO clip whose ratio, on guided rows, divides by the hint-conditioned behaviour policy.

    $$\rho_{i,t} = \frac{\pi_\theta(y_{i,t}\mid x, y_{i,<t})}{\pi_\text{old}(y_{i,t}\mid x, h_i, y_{i,<t})}
      \ \text{(guided } i\text{)},\qquad
      \rho_{i,t} = \frac{\pi_\theta(y_{i,t}\mid x, y_{i,<t})}{\pi_\text{old}(y_{i,t}\mid x, y_{i,<t})}\ \text{(others)}$$

    $$\ell_{i,t} = \max\big(-A_{i,t}\rho_{i,t},\ -A_{i,t}\,\mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\text{low}, 1+\varepsilon_\text{high})\big)$$

    A guided response $y_i$ was sampled with a hint $h_i$ in the context (for prompts whose
    unguided rollouts all failed); ``logp`` must be recomputed *without* the hint (the
    context the policy is trained for), ``extras["logp_old_hint"]`` holds the sampler's
    log-probs *with* it, so the importance ratio corrects for the context shift. Rows not in
    ``extras["guided"]`` use ``logp_old``; with no guided rows this is :class:`clip_ratio`.

    Nath, Lau, Gunjal, Sharma, Baharte, Hendryx, "Adaptive Guidance Accelerates Reinforcement
    Learning of Reasoning Models" (Guide), arXiv 2506.13923, Guide-GRPO. UNVERIFIED (no code;
    abstract and reviews): whether guided rollouts replace or join the failed ones, and how
    advantages are normalised over mixed groups (the reading here: recompute GRPO advantages
    on the union, i.e. put the guided rows in the prompt's group before ``group_zscore``); the
    clip values (PPO's 0.2 here). The log-ratio is clamped to $\pm 20$ as in verl.

    Off-policy shaping (``shaping``, the released Guide code, vaskar-open-source-research/
    guide_rl, ``core_algos.compute_policy_loss`` with ``apply_off_policy_shaping=True``): on
    guided rows the ratio is replaced by $\tilde\rho = \rho/(\rho + \gamma)$ and **not
    clipped** (PPO's clip stays on the other rows); ``"constant"``: $\gamma$ = ``gamma``;
    ``"percentile"``: $\gamma$ = the ``gamma``-quantile of the detached ratios of the guided
    tokens, at least $10^{-4}$ (``gamma_strategy=percentile``, ``gamma_value=0.9`` in
    ``guide_grpo_qwen.sh``); ``"power"``: $\tilde\rho = \rho^\gamma$. The percentile runs over
    the guided tokens of the whole optimizer mini-batch (``scope="batch"``, the default: a
    mini-batch statistic, so micro-batching changes nothing) or, as the reference code does,
    over those of each call (``scope="micro_batch"``, ``guide_recipe``): when guided rows are
    split across micro-batches **the gradient then depends on the micro-batch size**. The
    reference's quantile runs over every position of the guided rows, padding included (a
    ``[B]`` row mask indexing a ``[B, T]`` ratio); here it runs over their valid tokens.

    Args:
        eps_low, eps_high: clip range.
        log_ratio_clamp: bound on $|\log\rho|$.
        shaping: None (default: the clipped ratio on guided rows too), ``"constant"``,
            ``"percentile"`` or ``"power"``.
        gamma: $\gamma$ of the shaping (a level in $(0, 1]$ for ``"percentile"``).
        scope: where ``"percentile"`` takes its quantile: ``"batch"`` (default, the whole
            mini-batch) or ``"micro_batch"`` (each call, the reference's).

    Example:
        >>> from rlobj import clip_ratio, grpo
        >>> recipe = grpo.replace(clip_ratio, hint_clip_ratio())
    """

    eps_low: Fraction = 0.2
    eps_high: NonNegative = 0.2
    log_ratio_clamp: Positive = 20.0
    shaping: str | None = None
    gamma: float = 0.9
    scope: str = "batch"

    def __post_init__(self):
        if self.scope not in ("batch", "micro_batch"):
            raise RlobjInputError(f"hint_clip_ratio.scope: expected 'batch' or 'micro_batch', got {self.scope!r}")
        if self.shaping not in (None, "constant", "percentile", "power"):
            raise RlobjInputError(f"hint_clip_ratio.shaping: expected None, 'constant', 'percentile' or 'power', "
                                  f"got {self.shaping!r}")
        if self.shaping == "percentile":
            check_range("hint_clip_ratio", "gamma", self.gamma, low=0.0, high=1.0, low_open=True)
        elif self.shaping is not None:
            check_range("hint_clip_ratio", "gamma", self.gamma, low=0.0, low_open=True)

    def has_minibatch_stats(self) -> bool:
        return self.shaping == "percentile" and self.scope == "batch"

    def percentile(self, ratio: Tensor, rows: Tensor) -> Tensor:
        """The ``gamma``-quantile of the detached ratios at ``rows``, at least 1e-4 (1 when none)."""
        if not bool(rows.any()):
            return torch.ones((), dtype=ratio.dtype, device=ratio.device)
        values = ratio.detach()[rows]  # quantile needs float32/64 (bf16 ratios are upcast)
        values = values if values.dtype in (torch.float32, torch.float64) else values.float()
        return torch.quantile(values, self.gamma).clamp(min=1e-4).to(ratio.dtype)

    def _ratio(self, state: State) -> Tensor:
        log_ratio = torch.clamp(state.logp - self.behaviour_logp(state), -self.log_ratio_clamp, self.log_ratio_clamp)
        return log_ratio.exp()

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        """``gamma``: the percentile over the guided tokens of the whole mini-batch."""
        if not self.has_minibatch_stats():
            return {}
        guided = _extra(state, "guided", "hint_clip_ratio", (state.batch_size,), "batch", "bool")
        return {"gamma": self.percentile(self._ratio(state).detach(), guided[:, None] & state.mask)}

    def shaped(self, ratio: Tensor, rows: Tensor, gamma: Tensor | None = None) -> Tensor:
        """$\tilde\rho$ on the guided tokens ``rows`` (``ratio`` elsewhere); ``gamma``: the
        mini-batch percentile (``scope="batch"``), else taken over ``rows``."""
        if self.shaping == "power":
            return torch.where(rows, ratio.clamp(min=0.0) ** self.gamma, ratio)
        if self.shaping == "percentile":
            if not bool(rows.any()):
                return ratio
            gamma = self.percentile(ratio, rows) if gamma is None else gamma.to(ratio.dtype)
        else:
            gamma = torch.as_tensor(self.gamma, dtype=ratio.dtype, device=ratio.device)
        return torch.where(rows, ratio / (ratio + gamma), ratio)

    def behaviour_logp(self, state: State) -> Tensor:
        """$\\log\\pi_\\text{old}$ in the context each row was sampled in (no gradient)."""
        logp_old = state.require("logp_old")
        guided = _extra(state, "guided", "hint_clip_ratio", (state.batch_size,), "batch", "bool")
        hinted = _extra(state, "logp_old_hint", "hint_clip_ratio", tuple(state.mask.shape), "batch seq", "float")
        rows = guided[:, None] & state.mask
        check_finite("extras['logp_old_hint']", hinted, where=rows)
        if bool((torch.where(rows, hinted.detach(), 0) > 1e-6).any()):
            raise RlobjInputError("extras['logp_old_hint']: log-probabilities must be <= 0 at valid tokens of guided rows")
        return torch.where(rows, hinted.detach().to(logp_old.dtype), logp_old)

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        ratio = self._ratio(state)
        unclipped = -advantages * ratio
        clipped = -advantages * torch.clamp(ratio, 1.0 - self.eps_low, 1.0 + self.eps_high)
        loss = torch.maximum(unclipped, clipped)
        guided = state.extras["guided"]
        if self.shaping is not None:  # guided tokens: the shaped ratio, unclipped
            rows = guided.bool()[:, None] & state.mask
            gamma = None
            if self.has_minibatch_stats():  # the mini-batch's percentile; a direct call takes its own
                gamma = state.own_stats("gamma")
                gamma = self.percentile(ratio, rows) if gamma is None else gamma
            loss = torch.where(rows, -advantages * self.shaped(ratio, rows, gamma), loss)
        return state.add_part("policy", LossPart(loss, state.mask)).add_metrics(**{
            "ratio/mean": masked_mean(ratio.detach(), state.mask),
            "clip_frac": masked_mean((clipped > unclipped).float(), state.mask),
            "guide/guided_frac": guided.float().mean(),
        })


class mis_exploration_pg(Term,
                         reads=("logp", "logp_old", "advantages", "mask", "extras:off_policy"),
                         writes=("part:policy",)):
    r"""RL-PLUS: multiple-importance-sampled, exploration-weighted policy gradient on external tokens.

    On external (off-policy) tokens $e_t$ (``extras["off_policy"]``), with the external policy's
    probability estimated as $\hat\pi_\omega = (\pi_\text{old} + 1)/2$:

    $$r^\text{MIS}_t = \frac{\pi_\theta(e_t)}{\tfrac12\pi_\text{old}(e_t) + \tfrac12\hat\pi_\omega(e_t)}
      = \frac{\pi_\theta(e_t)}{\tfrac34\pi_\text{old}(e_t) + \tfrac14},\qquad
      C_t = \big(1 - \mathrm{sg}[\pi_\theta(e_t)]\big)^\gamma,\qquad
      \ell_t = -\,r^\text{MIS}_t\,A_i\,C_t$$

    and on the policy's own tokens $\ell_t = -A_{i,t}\,\rho_t$ without clipping (``clip`` to
    clip them PPO-style). $C_t$ keeps the advantage of correct but hard-to-explore tokens
    (low $\pi_\theta$) and shrinks it where the policy is already confident.

    Dong et al., "RL-PLUS: Countering Capability Boundary Collapse of LLMs in Reinforcement
    Learning with Hybrid-policy Optimization", arXiv 2508.00222; reference defaults
    (YihongDong/RL-PLUS, ``compute_token_on_off_policy_loss``, ``train_RL-PLUS.sh``):
    $\gamma = 0.5$, no clip on on-policy tokens, loss summed over tokens and divided by the
    padded length only (``constant_normalizer(8192, per_sequence=False)``), one external
    response per group of 8 with advantages over all 8 **without** the std
    (``grpo_use_std=False``: ``group_mean_baseline``), entropy bonus 0.001 as a token mean, no
    KL: the whole recipe is ``rl_plus_recipe``. UNVERIFIED: whether the paper states
    the estimate $\hat\pi_\omega = (\pi_\text{old}+1)/2$ (it is the code's). The optional
    clamp ``mis_max`` of $r^\text{MIS}$ is off by default, as in the reference.

    Args:
        gamma: $\gamma \ge 0$ ($0$: $C = 1$).
        clip: clip on-policy ratios with ``eps`` (False: plain $\rho$, the reference script).
        eps: PPO clip range for ``clip=True``.
        mis_max: upper clamp of $r^\text{MIS}$ or None.

    Example:
        >>> from rlobj import constant_normalizer, entropy_bonus, group_mean_baseline
        >>> recipe = (group_mean_baseline() >> mis_exploration_pg() >> entropy_bonus(0.001, aggregation="token_mean")
        ...           >> constant_normalizer(8192, per_sequence=False))
    """

    gamma: NonNegative = 0.5
    clip: bool = False
    eps: Fraction = 0.2
    mis_max: float | None = None

    def __post_init__(self):
        if self.mis_max is not None:
            check_range("mis_exploration_pg", "mis_max", self.mis_max, low=0.0, low_open=True)

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        logp_old = state.require("logp_old")
        external = _extra(state, "off_policy", "mis_exploration_pg", tuple(state.mask.shape), "batch seq", "bool")
        external = external & state.mask
        prob = state.logp.exp()
        mis = prob / (0.75 * logp_old.exp() + 0.25)  # 1/2 pi_old + 1/2 (pi_old + 1)/2
        if self.mis_max is not None:
            mis = torch.clamp(mis, max=self.mis_max)
        explore = (1.0 - prob.detach()).clamp(min=0.0) ** self.gamma
        ratio = torch.clamp(state.logp - logp_old, -20.0, 20.0).exp()
        on_policy = -advantages * ratio
        if self.clip:
            on_policy = torch.maximum(on_policy, -advantages * torch.clamp(ratio, 1 - self.eps, 1 + self.eps))
        loss = torch.where(external, -mis * advantages * explore, on_policy)
        return state.add_part("policy", LossPart(loss, state.mask)).add_metrics(**{
            "rlplus/off_policy_frac": masked_mean(external.float(), state.mask),
            "rlplus/mis_mean": mis.detach()[external].mean() if bool(external.any()) else torch.zeros(()),
            "rlplus/explore_mean": explore[external].mean() if bool(external.any()) else torch.zeros(()),
            "ratio/mean": masked_mean(ratio.detach(), state.mask & ~external),
        })
