r"""Advantage terms: rewards (outcome and token-level) to per-token advantages.

All run in the batch stage (on whole groups, before micro-batching) and write
``advantages`` (``"batch seq"``, zero on padding, no gradient). The sequence reward is
$r_i$ = outcome reward + sum of token-level rewards, so a KL folded into the reward or a
process reward is counted. Group statistics follow DESIGN's conventions: $\mathrm{mean}_g$,
$\mathrm{std}_g$ (Bessel-corrected unless ``unbiased=False``), leave-one-out means.
"""

import math
from typing import Annotated

import torch

from rlobj.algebra.contract import Fraction, NonNegative, Positive, Range
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_finite, check_shape
from rlobj.ops.reductions import (
    broadcast_to_tokens,
    group_all_equal,
    group_count,
    group_mean,
    group_std,
    group_sum,
    leave_one_out_mean,
    masked_mean,
    masked_var,
    returns_to_go,
    sequence_lengths,
)
from rlobj.terms._common import require_binary, require_groups, sequence_rewards, with_advantages

__all__ = [
    "group_mean_baseline",
    "group_zscore",
    "group_mean_batch_std",
    "leave_one_out",
    "batch_whiten",
    "group_baseline_whiten",
    "length_weighted_baseline",
    "gpg_scale",
    "passk_advantage",
    "multi_reward_advantage",
]


def _check_singleton(term: str, singleton: str, choices: tuple[str, ...]) -> None:
    if singleton not in choices:
        raise RlobjInputError(f"{term}.singleton: expected one of {choices}, got {singleton!r}")


def _centred(values, group_ids, singleton: str):
    r"""$r_i - \mathrm{mean}_g(r)$; with ``singleton="verl"`` the mean of a group of one
    response is taken as 0 (verl 0.9), so that row keeps its reward."""
    mean = group_mean(values, group_ids)
    if singleton == "verl":
        mean = torch.where(group_count(group_ids) == 1, torch.zeros_like(mean), mean)
    return values - mean


def _divide(centred, std, eps):
    r"""$(x - \mu)/(\sigma + \varepsilon)$, and exactly 0 where $\sigma = 0$ (so ``eps=0`` is safe)."""
    return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))


class _AdvantageTerm(Term,
                     stage="batch",
                     reads=("rewards", "token_rewards", "group_ids", "mask"),
                     writes=("advantages",)):
    pass


class group_mean_baseline(_AdvantageTerm):
    r"""$A_i = r_i - \mathrm{mean}_{g(i)}(r)$: the group mean as baseline, no std division.

    Dr. GRPO (Liu et al., "Understanding R1-Zero-Like Training", arXiv 2503.20783, Sec. 3.1):
    dividing by the group std biases updates toward too-easy and too-hard questions, so the
    std is dropped. Sums to zero in every group.

    Example:
        >>> import torch
        >>> from rlobj.algebra import State
        >>> s = State.from_batch(logp=torch.zeros(3, 1), mask=torch.ones(3, 1, dtype=torch.bool),
        ...     rewards=torch.tensor([1.0, 0.0, 0.5]), group_ids=torch.tensor([0, 0, 1]))
        >>> group_mean_baseline()(s).advantages[:, 0].tolist()
        [0.5, -0.5, 0.0]

    Args:
        singleton: a group of one response: ``"zero"`` (default) gives $A=0$ (its own mean);
            ``"verl"`` follows verl's GRPO with ``norm_adv_by_std_in_grpo=False`` (group mean
            taken as 0, so $A_i = r_i$).
    """

    singleton: str = "zero"

    def __post_init__(self):
        _check_singleton("group_mean_baseline", self.singleton, ("zero", "verl"))

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        group_ids = require_groups(state)
        return with_advantages(state, _centred(rewards, group_ids, self.singleton))


class group_zscore(_AdvantageTerm):
    r"""$A_i = \dfrac{r_i - \mathrm{mean}_{g}(r)}{\mathrm{std}_{g}(r) + \varepsilon}$ (GRPO).

    Shao et al., DeepSeekMath, arXiv 2402.03300, Sec. 4.1.2 ("outcome supervision").

    Args:
        eps: $\varepsilon$ added to the std. Peers differ: verl ``1e-6``, TRL ``1e-4``,
            OpenRLHF ``1e-9`` (``group_norm``); oat uses ``1e-8`` (not re-checked).
        unbiased: Bessel-corrected std ($n-1$), as ``torch.std`` in verl, TRL and OpenRLHF.
            ``False`` gives the population std.
        singleton: what a group of one response does. ``"error"`` (default) refuses it;
            ``"verl"`` follows verl (mean 0, std 1, so $A_i = r_i/(1+\varepsilon)$); ``"zero"``
            gives $A_i=0$. ``"error"`` refuses singletons whatever ``unbiased`` is.

    Warning:
        With all-equal rewards in a group the std is 0 and $A=0$ exactly (not NaN), for
        every eps >= 0.
    """

    eps: NonNegative = 1e-6
    unbiased: bool = True
    singleton: str = "error"

    def __post_init__(self):
        if self.singleton not in ("error", "verl", "zero"):
            raise RlobjInputError(
                f"group_zscore.singleton: expected 'error', 'verl' or 'zero', got {self.singleton!r}"
            )

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        minimum = 2 if self.singleton == "error" else 1
        group_ids = require_groups(state, minimum=minimum)
        mean, std = group_mean(rewards, group_ids), group_std(rewards, group_ids, self.unbiased)
        advantages = _divide(rewards - mean, std, self.eps)
        alone = group_count(group_ids) == 1
        if bool(alone.any()):
            fallback = rewards / (1.0 + self.eps) if self.singleton == "verl" else torch.zeros_like(rewards)
            advantages = torch.where(alone, fallback, advantages)
        return with_advantages(state, advantages)


class group_mean_batch_std(_AdvantageTerm):
    r"""$A_i = \dfrac{r_i - \mathrm{mean}_{g}(r)}{\mathrm{std}_\text{batch}(r) + \varepsilon}$ (Lite-PPO).

    Group-level mean, batch-level std: Liu et al., "Tricks or Traps? A Deep Dive into RL for
    LLM Reasoning", arXiv 2508.08221, Sec. 4.1 (the "Lite PPO" recipe). The batch std is
    Bessel-corrected and taken over every sequence of the batch.
    """

    eps: NonNegative = 1e-6

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        group_ids = require_groups(state)
        std = rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())
        return with_advantages(state, _divide(rewards - group_mean(rewards, group_ids), std, self.eps))


class leave_one_out(_AdvantageTerm):
    r"""$A_i = r_i - \frac{1}{|g|-1}\sum_{j\in g, j\neq i} r_j$ (RLOO).

    Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for Learning
    from Human Feedback in LLMs", arXiv 2402.14740, Eq. 6 (Kool et al. 2019). Unbiased
    baseline; equals $\frac{|g|}{|g|-1}(r_i - \mathrm{mean}_g r)$. Needs groups of two or more.

    Args:
        singleton: ``"error"`` (default) refuses a group of one response; ``"verl"`` leaves its
            advantage as the reward, as verl's RLOO estimator does.
    """

    singleton: str = "error"

    def __post_init__(self):
        _check_singleton("leave_one_out", self.singleton, ("error", "verl"))

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        group_ids = require_groups(state, minimum=2 if self.singleton == "error" else 1)
        alone = group_count(group_ids) == 1
        loo = torch.where(alone, torch.zeros_like(rewards), leave_one_out_mean(rewards, group_ids))
        return with_advantages(state, rewards - loo)


def _whiten(values, mask, eps, unbiased=False):
    # float64 inside: whitening divides by the spread, which can be tiny next to the values
    # (equal rewards plus a small KL in the reward), where float32 rounding of the sums would
    # depend on the padding width
    wide = values.double()
    mean = masked_mean(wide, mask)
    var = masked_var(wide, mask, unbiased=unbiased)
    return torch.where(mask, (wide - mean) * torch.rsqrt(var + eps), wide.new_zeros(())).to(values.dtype)


def _token_returns(state: State, by: str, gamma: float):
    """Outcome reward placed on the last valid token plus token rewards, summed to go."""
    mask = state.mask
    rewards = torch.zeros(mask.shape, dtype=torch.float64, device=mask.device)  # see _whiten
    if state.token_rewards is not None:
        rewards = rewards + state.token_rewards
    if state.rewards is not None:
        last = (mask.cumsum(-1) == mask.sum(-1, keepdim=True)) & mask
        rewards = rewards + torch.where(last, state.rewards[:, None], state.rewards.new_zeros(()))
    elif state.token_rewards is None:
        sequence_rewards(state, by)  # raises the missing-rewards error
    return returns_to_go(rewards, mask, gamma).to(state.logp.dtype)


class batch_whiten(_AdvantageTerm):
    r"""REINFORCE++: token returns whitened over the whole batch.

    $G_{i,t} = \sum_{t'\ge t}\gamma^{t'-t} r_{i,t'}$ (outcome reward on the last token plus
    token rewards, e.g. a KL folded into the reward), then
    $A_{i,t} = (G_{i,t} - \mu)/\sqrt{\sigma^2 + \varepsilon}$ with $\mu, \sigma^2$ the mean
    and (population) variance over all valid tokens of the batch. Hu, "REINFORCE++",
    arXiv 2501.03262, Sec. 3; defaults of OpenRLHF (``gamma=1``, ``eps=1e-8`` inside the sqrt).

    Args:
        gamma: discount of the returns.
        eps: added to the variance inside the square root.
        unbiased: Bessel-corrected variance ($n-1$ over the valid tokens), as verl's
            ``masked_whiten`` in its ``reinforce_plus_plus`` estimator; default False: the
            population variance (OpenRLHF).
    """

    gamma: Fraction = 1.0
    eps: NonNegative = 1e-8
    unbiased: bool = False

    def __call__(self, state: State) -> State:
        returns = _token_returns(state, "batch_whiten", self.gamma)
        return with_advantages(state, per_token=_whiten(returns, state.mask, self.eps, self.unbiased))


class group_baseline_whiten(_AdvantageTerm):
    r"""REINFORCE++-baseline: $A_i = r_i - \mathrm{mean}_g(r)$, then whitened over the batch.

    Hu et al., REINFORCE++ (arXiv 2501.03262 v3+, "REINFORCE++-baseline"): the group mean
    removes per-prompt reward offsets, the batch whitening fixes the scale
    ($\varepsilon = 10^{-8}$ inside the sqrt, statistics over all valid tokens).

    Args:
        eps: added to the variance inside the square root.
        unbiased: Bessel-corrected variance, as verl's ``reinforce_plus_plus_baseline``;
            default False (population variance, OpenRLHF).
        singleton: a group of one response: ``"zero"`` (default) centres it on its own
            reward (0); ``"verl"`` takes its group mean as 0, as verl does.
    """

    eps: NonNegative = 1e-8
    unbiased: bool = False
    singleton: str = "zero"

    def __post_init__(self):
        _check_singleton("group_baseline_whiten", self.singleton, ("zero", "verl"))

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        group_ids = require_groups(state)
        centred = broadcast_to_tokens(_centred(rewards, group_ids, self.singleton), state.mask)
        return with_advantages(state, per_token=_whiten(centred, state.mask, self.eps, self.unbiased))


class length_weighted_baseline(_AdvantageTerm):
    r"""OPO: $A_i = r_i - b_g$ with the length-weighted baseline $b_g = \frac{\sum_{j\in g} |y_j| r_j}{\sum_{j \in g}|y_j|}$.

    Hao et al., "On-Policy RL with Optimal Reward Baseline", arXiv 2505.23585, Eq. 5: the
    variance-minimising baseline under sequence-level rewards when the gradient norm grows
    with length. Equals the group mean when all lengths are equal.
    """

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        group_ids = require_groups(state)
        lengths = sequence_lengths(state.mask).to(rewards.dtype)
        # r_i - b_g written around the (exact) group mean m_g: (r_i - m_g) - sum l_j (r_j - m_g) / sum l_j,
        # so an all-equal group gives exactly 0.
        centred = rewards - group_mean(rewards, group_ids)
        offset = group_sum(lengths * centred, group_ids) / group_sum(lengths, group_ids).clamp(min=1)
        return with_advantages(state, centred - offset)


class gpg_scale(_AdvantageTerm):
    r"""GPG: $A_i = \alpha\,(r_i - \mathrm{mean}_g r)/F$ with $\alpha = B / (B - M)$.

    Chu et al., "GPG: A Simple and Strong Reinforcement Learning Baseline for Model
    Reasoning", arXiv 2504.02546, Eq. 6-7: $B$ sequences in the batch, $M$ of them in groups
    whose rewards are all equal (zero advantage); $\alpha$ rescales the gradient so that
    those groups do not dilute it. $F$ (``norm``) is 1 in the reference code.
    """

    norm: Positive = 1.0

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        group_ids = require_groups(state)
        flat = group_all_equal(rewards, group_ids)
        valid = float((~flat).sum())
        alpha = rewards.numel() / valid if valid > 0 else 1.0
        return with_advantages(state, alpha * (rewards - group_mean(rewards, group_ids)) / self.norm).add_metrics(
            **{"adv/gpg_alpha": alpha}
        )


class passk_advantage(_AdvantageTerm):
    r"""Analytical pass@k advantage for binary rewards (Pass@k Training).

    For a group of $N$ responses with $c$ correct: the group's pass@k reward is
    $\bar R = 1 - \binom{N-c}{k}/\binom{N}{k}$, $\sigma = \sqrt{\bar R(1-\bar R)}$, and
    $A^+ = (1-\bar R)/\sigma$ for correct responses,
    $A^- = \big(1 - \bar R - \binom{N-c-1}{k-1}/\binom{N-1}{k-1}\big)/\sigma$ for incorrect
    ones (0 when $\sigma = 0$). Chen et al., "Pass@k Training for Adaptively Balancing
    Exploration and Exploitation of Large Reasoning Models", arXiv 2508.10751, Sec. 3.
    Rewards must be 0 or 1; groups need at least ``k`` members.
    """

    k: Annotated[int, Range(ge=1)] = 4

    def __call__(self, state: State) -> State:
        rewards = require_binary(sequence_rewards(state), "passk_advantage needs binary rewards (expected 0 or 1)")
        group_ids = require_groups(state, minimum=self.k)
        n = group_count(group_ids)
        c = group_sum(rewards, group_ids)
        advantages = torch.zeros_like(rewards)
        for i in range(rewards.numel()):
            total, correct = int(n[i]), int(c[i])
            mean = 1.0 - math.comb(total - correct, self.k) / math.comb(total, self.k)
            sigma = math.sqrt(mean * (1.0 - mean))
            if sigma == 0.0:
                continue
            if rewards[i] == 1:
                advantages[i] = (1.0 - mean) / sigma
            else:
                miss = math.comb(total - correct - 1, self.k - 1) / math.comb(total - 1, self.k - 1)
                advantages[i] = (1.0 - mean - miss) / sigma
        return with_advantages(state, advantages)


class multi_reward_advantage(_AdvantageTerm,
                             reads=("extras:reward_components", "group_ids", "mask")):
    r"""Advantages from several reward components $r^{(k)}$ with weights $w_k$.

    ``mode="decoupled"`` (GDPO): normalise each component within its group first,
    $\tilde A^{(k)}_i = (r^{(k)}_i - \mathrm{mean}_g r^{(k)})/(\mathrm{std}_g r^{(k)}+\varepsilon)$,
    sum $\sum_k w_k \tilde A^{(k)}_i$, then renormalise that sum over the batch (mean 0, std 1).
    Liu et al., "GDPO: Group reward-Decoupled Normalization Policy Optimization for
    Multi-reward RL Optimization", arXiv 2601.05242 (id not re-checked).

    ``mode="summed"`` (what GRPO does with several rewards): $r_i = \sum_k w_k r^{(k)}_i$, then
    the group z-score. With one component both modes give the GRPO advantage (the batch
    renormalisation aside).

    The components are read from ``extras["reward_components"]`` (``"batch k"``); ``weights``
    default to 1 for every component.
    """

    weights: tuple[float, ...] | None = None
    mode: str = "decoupled"
    eps: NonNegative = 1e-6

    def __post_init__(self):
        if self.mode not in ("decoupled", "summed"):
            raise RlobjInputError(f"multi_reward_advantage.mode: expected 'decoupled' or 'summed', got {self.mode!r}")
        if self.weights is not None and (len(self.weights) == 0 or not all(math.isfinite(float(w)) for w in self.weights)):
            raise RlobjInputError(
                f"multi_reward_advantage.weights: expected one or more finite numbers, got {self.weights!r}"
            )

    def __call__(self, state: State) -> State:
        components = state.require("extras:reward_components")
        count = components.shape[-1] if self.weights is None else len(self.weights)
        check_shape("extras['reward_components']", components, (state.batch_size, count), "batch k")
        if not components.is_floating_point():  # int/bool 0-1 components: do not truncate the weights
            components = components.to(state.logp.dtype)
        check_finite("extras['reward_components']", components)
        group_ids = require_groups(state, minimum=2)
        weights = (torch.ones(count, dtype=components.dtype, device=components.device) if self.weights is None
                   else torch.tensor(self.weights, dtype=components.dtype, device=components.device))

        def zscore(values):
            return _divide(values - group_mean(values, group_ids), group_std(values, group_ids), self.eps)

        if self.mode == "summed":
            return with_advantages(state, zscore(components @ weights))
        combined = sum(w * zscore(components[:, k]) for k, w in enumerate(weights))
        std = combined.std() if combined.numel() > 1 else combined.new_zeros(())
        return with_advantages(state, _divide(combined - combined.mean(), std, self.eps))
