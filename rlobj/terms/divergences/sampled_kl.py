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

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import LossPart, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.kl import k3_estimate
from rlobj.ops.reductions import masked_mean

__all__ = ["kl_estimate", "kl_penalty", "k1_kl", "k2_kl", "k3_kl", "abs_kl"]


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
        value = k3_estimate(d)
        value = torch.clamp(value, -10.0, 10.0) if clamp else value
    elif estimator == "abs":
        value = d.abs()
    else:
        raise RlobjInputError(f"kl estimator: expected one of {ESTIMATORS}, got {estimator!r}")
    if straight_through:
        value = value.detach() + k2 - k2.detach()
    return value


class kl_penalty(Term, may_read=("logp_old",)):
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

    beta: NonNegative = 0.001
    estimator: str = "k3"
    against: str = "ref"
    placement: str = "loss"
    straight_through: bool = False
    allow_reward_and_loss: bool = False
    clamp: bool = True
    bias_correction: bool = False
    scale_key: str | None = None

    def __post_init__(self):
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
        target = state.require(self._target())
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
            scale = state.require(f"extras:{self.scale_key}")
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
