r"""Policy-gradient surrogates (the ``"policy"`` loss part): REINFORCE and the ratio-clipped family.

Notation: $\rho_{i,t} = \exp(\log\pi_\theta - \log\pi_\text{old})$ is the token ratio,
$A_{i,t}$ the advantage, $\mathrm{sg}[\cdot]$ stop-gradient. Every surrogate writes a
per-token loss $\ell_{i,t}$ (minimised) to the part ``"policy"``; the aggregation turns it
into a scalar. Importance-sampling corrections for the engine/trainer mismatch, which
multiply or mask the policy part, are in :mod:`rlobj.terms.masks.importance_weights`.
"""

import torch

from rlobj.algebra.contract import Fraction, NonNegative, Positive
from rlobj.algebra.state import State
from rlobj.ops.reductions import broadcast_to_tokens, masked_mean
from rlobj.terms._common import check_range
from rlobj.terms.surrogates._base import (
    _check_rows,
    _log_ratio,
    _policy,
    _ppo_loss,
    _ratio_metrics,
    _Surrogate,
)

__all__ = ["reinforce", "clip_ratio", "delta_clip", "sequence_clip", "geometric_clip",
           "clipped_weight_pg", "soft_gate"]


class reinforce(_Surrogate, reads=("logp", "advantages", "mask")):
    r"""$\ell_{i,t} = -A_{i,t}\log\pi_\theta(y_{i,t})$: the plain policy gradient.

    Williams 1992; the surrogate of PSR/NSR (Zhu et al., arXiv 2506.01347) and RLOO
    (Ahmadian et al., arXiv 2402.14740). Its gradient equals the unclipped ratio surrogate
    at $\theta = \theta_\text{old}$; it needs no ``logp_old``.
    """

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        return _policy(state, -advantages * state.logp)


class clip_ratio(_Surrogate):
    r"""PPO clip with separate low/high epsilon and optional dual clip.

    $$\ell = \max\big(-A\rho,\; -A\,\mathrm{clip}(\rho, 1-\varepsilon_\text{low}, 1+\varepsilon_\text{high})\big),
    \qquad \ell \leftarrow \min(\ell, -cA) \text{ if } A<0 \text{ (dual clip)}$$

    Schulman et al., PPO, arXiv 1707.06347, Eq. 7; clip-higher $\varepsilon_\text{high} >
    \varepsilon_\text{low}$ from DAPO (Yu et al., arXiv 2503.14476, Eq. 10: 0.2 / 0.28); dual
    clip $c=3$ from Ye et al., arXiv 1912.09729, Eq. 5 (verl ``clip_ratio_c``).
    The log-ratio is clamped to $[-20, 20]$ before ``exp``, as in verl.

    Args:
        eps_low: $\varepsilon_\text{low}$ (default 0.2).
        eps_high: $\varepsilon_\text{high}$ (default 0.2; DAPO uses 0.28).
        dual_clip: $c > 1$ or None (off).
        log_ratio_clamp: bound on $|\log\rho|$.
    """

    eps_low: Fraction = 0.2
    eps_high: NonNegative = 0.2
    dual_clip: float | None = None
    log_ratio_clamp: Positive = 20.0

    def __post_init__(self):
        if self.dual_clip is not None:
            check_range("clip_ratio", "dual_clip", self.dual_clip, low=1.0, low_open=True)

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        log_ratio = _log_ratio(state, "clip_ratio", self.log_ratio_clamp)
        loss, clipped = _ppo_loss(log_ratio.exp(), advantages, self.eps_low, self.eps_high, self.dual_clip)
        return _policy(state, loss, **_ratio_metrics(state, log_ratio, clipped))


class delta_clip(_Surrogate):
    r"""Two-sided clipping: for $A<0$ the ratio is also capped at $\delta$.

    $$\ell = -\min\big(\min(\rho, \delta)A,\; \mathrm{clip}(\rho, 1-\varepsilon_\text{low}, 1+\varepsilon_\text{high})A\big)$$

    Prime Intellect, INTELLECT-2 report, arXiv 2505.07291, Sec. 3.3 ($\delta = 4$). For
    $A \ge 0$ the cap never binds, and for $A<0$ the result equals the dual clip with
    $c = \delta$ (a tested identity); it is kept under the paper's name. Both statements need
    $\delta \ge 1+\varepsilon_\text{high}$ (a smaller cap would also bind for $A>0$ inside the
    trust region), so a smaller ``delta`` is refused.
    """

    delta: float = 4.0
    eps_low: Fraction = 0.2
    eps_high: NonNegative = 0.2
    log_ratio_clamp: Positive = 20.0

    def __post_init__(self):
        check_range("delta_clip", "delta", self.delta, low=1.0 + self.eps_high)

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        log_ratio = _log_ratio(state, "delta_clip", self.log_ratio_clamp)
        ratio = log_ratio.exp()
        capped = -torch.minimum(torch.clamp(ratio, max=self.delta) * advantages,
                                torch.clamp(ratio, 1 - self.eps_low, 1 + self.eps_high) * advantages)
        clipped = capped.detach() != (-advantages * ratio).detach()
        return _policy(state, capped, **_ratio_metrics(state, log_ratio, clipped))


class sequence_clip(_Surrogate):
    r"""GSPO: one length-normalised ratio per sequence, clipped per sequence.

    $$s_i = \exp\Big(\frac{1}{|y_i|}\sum_t \log\frac{\pi_\theta(y_{i,t})}{\pi_\text{old}(y_{i,t})}\Big),\qquad
    \ell_{i,t} = \max\big(-A_{i,t}\,s_{i,t},\; -A_{i,t}\,\mathrm{clip}(s_{i,t}, 1-\varepsilon_l, 1+\varepsilon_h)\big)$$

    With ``token_level=False`` (GSPO) $s_{i,t} = s_i$; with ``token_level=True`` (GSPO-token)
    $s_{i,t} = \mathrm{sg}[s_i]\,\pi_\theta(y_{i,t})/\mathrm{sg}[\pi_\theta(y_{i,t})]$: same
    value, per-token gradient, which allows per-token advantages. Zheng et al., "Group
    Sequence Policy Optimization", arXiv 2507.18071, Eq. 5-7 and 10; reference defaults
    $\varepsilon_l = 3\cdot10^{-4}$, $\varepsilon_h = 4\cdot10^{-4}$, log-ratio clamped at 10.
    """

    eps_low: Fraction = 3e-4
    eps_high: NonNegative = 4e-4
    token_level: bool = False
    log_ratio_clamp: Positive = 10.0

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        logp_old = state.require("logp_old")
        _check_rows(state, "sequence_clip (a sequence-level ratio)")
        mean_log_ratio = masked_mean(state.logp - logp_old, state.mask, dim=-1)
        mean_log_ratio = torch.clamp(mean_log_ratio, max=self.log_ratio_clamp)
        tokens = broadcast_to_tokens(mean_log_ratio, state.mask)
        if self.token_level:
            tokens = tokens.detach() + state.logp - state.logp.detach()
        ratio = tokens.exp()
        loss, clipped = _ppo_loss(ratio, advantages, self.eps_low, self.eps_high, None)
        return _policy(state, loss, **_ratio_metrics(state, tokens, clipped))


class geometric_clip(_Surrogate):
    r"""GMPO: geometric mean of the clipped token ratios, one value per sequence.

    $$\ell_{i,t} = -A_i \exp\Big(\frac{1}{|y_i|}\sum_t \mathrm{sgn}(A_i)\,
      \min\big(\mathrm{sgn}(A_i)\log\rho_{i,t},\ \mathrm{clip}(\mathrm{sgn}(A_i)\log\rho_{i,t}, -\varepsilon, \varepsilon)\big)\Big)$$

    (clipping in log space, range $(e^{-\varepsilon}, e^{\varepsilon})$). Zhao et al.,
    "Geometric-Mean Policy Optimization", arXiv 2507.20673, Eq. 6; reference $\varepsilon=0.4$.
    The value is the same on every token of a sequence, so ``seq_mean_token_mean`` gives the
    paper's sequence average. Uses the sequence advantage (token advantages are averaged).
    """

    eps: Positive = 0.4

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        _check_rows(state, "geometric_clip (a per-sequence geometric mean)")
        log_ratio = _log_ratio(state, "geometric_clip", 20.0)
        seq_adv = masked_mean(advantages, state.mask, dim=-1)
        sign = torch.sign(seq_adv)[:, None]
        signed = sign * log_ratio
        kept = sign * torch.minimum(signed, torch.clamp(signed, -self.eps, self.eps))
        seq_ratio = masked_mean(kept, state.mask, dim=-1).exp()
        loss = broadcast_to_tokens(-seq_adv * seq_ratio, state.mask)
        clipped = signed.detach() > self.eps
        return _policy(state, loss, **_ratio_metrics(state, log_ratio, clipped))


class clipped_weight_pg(_Surrogate):
    r"""CISPO: clip the importance weight, never the gradient.

    $$\ell_{i,t} = -\mathrm{sg}\big[\mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\text{low}, 1+\varepsilon_\text{high})\big]\,A_{i,t}\,\log\pi_\theta(y_{i,t})$$

    MiniMax-M1, arXiv 2506.13585, Eq. 4-5: every token keeps a gradient (tokens outside the
    PPO trust region are not dropped). The paper imposes no lower bound (``eps_low=1.0``
    makes the lower bound 0) and tunes only $\varepsilon_\text{high}$; ScaleRL
    (arXiv 2510.13786) uses $\varepsilon_\text{high} = 4$, our default is MiniMax-like 0.28.
    """

    eps_low: Fraction = 1.0
    eps_high: NonNegative = 0.28

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        log_ratio = _log_ratio(state, "clipped_weight_pg", 20.0)
        ratio = log_ratio.detach().exp()
        weight = torch.clamp(ratio, 1 - self.eps_low, 1 + self.eps_high)
        clipped = weight != ratio
        return _policy(state, -weight * advantages * state.logp, **_ratio_metrics(state, log_ratio, clipped))


class soft_gate(_Surrogate):
    r"""SAPO: a smooth, temperature-controlled gate instead of the hard clip.

    $$\ell_{i,t} = -A_{i,t}\, \frac{4}{\tau}\,\sigma\big(\tau(\rho_{i,t} - 1)\big),\qquad
      \tau = \tau_\text{pos} \text{ if } A_{i,t} > 0 \text{ else } \tau_\text{neg}$$

    The gradient weight $4\sigma(1-\sigma)\rho$ is 1 at $\rho=1$ (plain policy gradient on
    policy) and decays smoothly off-policy. Gao et al. (Qwen), "Soft Adaptive Policy
    Optimization", arXiv 2511.20347, Eq. 6; reference $\tau_\text{pos}=1.0$, $\tau_\text{neg}=1.05$.
    """

    tau_pos: Positive = 1.0
    tau_neg: Positive = 1.05

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        log_ratio = _log_ratio(state, "soft_gate", 20.0)
        dtype = log_ratio.dtype
        tau = torch.where(advantages > 0, torch.tensor(self.tau_pos, dtype=dtype),
                          torch.tensor(self.tau_neg, dtype=dtype))
        gate = torch.sigmoid(tau * (log_ratio.exp() - 1)) * 4 / tau
        return _policy(state, -advantages * gate, **_ratio_metrics(state, log_ratio))
