r"""Auxiliary losses and the advantages built on them: LaSeR last-token self-rewarding, and
PACS, which recasts the policy loss itself as a supervised (cross-entropy) objective.

LaSeR (Yang, Liu, Xie, Guo, Wu, Yang, Lin, "LaSeR: Reinforcement Learning with Last-Token
Self-Rewarding", arXiv 2510.14943) reads a self-verification score off the policy's own
log-probability of a fixed token $z_c$ placed one position after the EOS of a finished response:

$$r_s = \beta_v\,\big(T \log\pi_\theta(z_c \mid x, y, \text{EOS}) - c\big),$$

trains it toward the verifiable reward with an auxiliary MSE loss, and can mix the score into
the advantages. The probe log-probability is an extra forward output the trainer appends:
``extras["self_reward_logp"]`` (``" batch"``, carrying gradient in the loss). Truncated
responses (``extras["truncated"]``, optional) get no self-reward. Reference code: RUCBM/LaSeR
(``dp_actor.py``, ``actor.yaml``); defaults below are its scripts'.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rlobj.algebra.state import LossPart, Normalizer, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_finite, check_shape
from rlobj.ops.reductions import (
    broadcast_to_tokens,
    group_count,
    group_mean,
    group_std,
    group_sum,
    leave_one_out_mean,
    masked_sum,
)
from rlobj.terms._common import check_range, require_groups, sequence_rewards, with_advantages

__all__ = ["self_reward_score", "self_reward_mse", "self_reward_advantage", "pacs_loss"]

_PROBE = "self_reward_logp"


def self_reward_score(probe_logp: Tensor, beta_v: float = 0.1, c: float = -23.0, temperature: float = 1.0) -> Tensor:
    r"""$r_s = \beta_v\,(T\log\pi_\theta(z_c \mid x, y) - c)$: the last-token self-reward.

    Also the inference-time reranking score (predicted correct iff $r_s > 0.5$). ``c`` stands
    for $\log\pi_\text{ref}(z_c\mid x,y)$, a constant $-23$ in the reference
    (``ref_model_log_ratio_constant``); ``temperature`` $T$ undoes the sampling temperature
    applied to the logits (1 in the scripts).
    """
    return beta_v * (temperature * probe_logp - c)


def _probe(state: State, by: str) -> Tensor:
    probe = state.require(f"extras:{_PROBE}", by)
    if not isinstance(probe, Tensor):
        raise RlobjInputError(f"extras[{_PROBE!r}]: {by} expected a float tensor of shape (batch,), got {type(probe).__name__}")
    check_shape(f"extras[{_PROBE!r}]", probe, (state.batch_size,), "batch")
    finished = _finished(state)
    check_finite(f"extras[{_PROBE!r}]", probe, where=finished)
    if bool((torch.where(finished, probe.detach(), 0) > 1e-6).any()):
        raise RlobjInputError(f"extras[{_PROBE!r}]: log-probabilities must be <= 0, got max {float(probe.max()):.4g}")
    return torch.where(finished, probe, torch.zeros((), dtype=probe.dtype, device=probe.device))


def _finished(state: State) -> Tensor:
    truncated = state.extras.get("truncated")
    if truncated is None:
        return torch.ones(state.batch_size, dtype=torch.bool, device=state.mask.device)
    check_shape("extras['truncated']", truncated, (state.batch_size,), "batch")
    return ~truncated.bool()


def _check_common(term: str, beta_v: float, temperature: float) -> None:
    check_range(term, "beta_v", beta_v, low=0.0, low_open=True)
    check_range(term, "temperature", temperature, low=0.0, low_open=True)


SCOPES = ("batch", "micro_batch")


@dataclass(frozen=True)
class self_reward_mse(Term):
    r"""LaSeR auxiliary loss: the self-reward regressed onto the verifiable reward.

    $$\mathcal L_\text{SR} = \alpha\,\frac{1}{N}\sum_i m_i\,w_i\,(r_{s,i} - r_i)^2,\qquad
      w_i = \begin{cases}\frac{N_f}{2N_+} & r_i \text{ correct}\\ \frac{N_f}{2N_-} & \text{otherwise}\end{cases}$$

    $m_i = 1$ for finished responses, $N$ = non-empty rows, $N_f, N_+, N_-$ = finished /
    finished correct ($r_i > 0.5$) / finished incorrect rows (weight 0 for an empty class;
    $w = 1$ with ``balanced=False``). Yang et al., arXiv 2510.14943 (Eq. for the last-token
    self-rewarding loss); reference defaults $\alpha = 0.1$ (``self_reward_loss_coef``),
    $\beta_v = 0.1$, $c = -23$, balanced weights on. Its optimum is
    $\log\pi(z_c) = c + r/\beta_v$ ($-13$ correct, $-23$ wrong).

    Writes the loss part ``"self_reward"``: $\alpha m_i w_i (r_{s,i}-r_i)^2$ on the last valid
    token of each row, so ``token_mean`` and the ``seq_mean_*`` aggregations give the mean over
    the rows ($1/N$; ``constant_normalizer`` divides it by its constant as well).

    Counts, micro-batches and ranks: with ``scope="batch"`` (default) $N$ is the **global**
    number of non-empty rows of the optimizer mini-batch (the normaliser's ``seqs`` over all
    micro-batches and ranks; the rows of the call when no normaliser is given) and
    $N_f, N_+, N_-$ are counted once per mini-batch by :meth:`minibatch_stats` (gathered over
    ranks by the trainer; the rows of the call when called directly). Only counts of the
    rewards and of ``extras["truncated"]`` are statistics: the probe log-probability, which
    carries gradient, is read per micro-batch. Splitting a mini-batch into micro-batches then
    changes no gradient. The reference computes the balanced weights once on the whole rollout
    batch (``ray_trainer.py``, ``reweighting_factor``): the same as here when a rollout batch
    is one optimizer mini-batch.

    Args:
        coef: $\alpha \ge 0$.
        beta_v, c, temperature: see :func:`self_reward_score`.
        balanced: class-balanced weights (reference ``self_reward_loss_balanced``).
        scope: ``"batch"`` (default, above) or ``"micro_batch"``: the reference code's
            normalisation, ``.mean()`` over the rows of each micro-batch (``dp_actor.py``):
            $N$ = the rows of the call, on this rank (the part's own mask counted locally).
            The gradient then depends on the micro-batch size (and the number of ranks), which
            breaks the micro-batch law on purpose. The balanced weights still come from the
            mini-batch statistics when the trainer provides them (the reference's are
            batch-wide too), else from the rows of the call.

    Example:
        >>> from rlobj import grpo
        >>> recipe = grpo >> self_reward_mse(coef=0.1)  # needs extras["self_reward_logp"]
    """

    reads: ClassVar[tuple[str, ...]] = ("rewards", f"extras:{_PROBE}", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:self_reward",)
    may_read: ClassVar[tuple[str, ...]] = ("extras:truncated",)
    coef: float = 0.1
    beta_v: float = 0.1
    c: float = -23.0
    temperature: float = 1.0
    balanced: bool = True
    scope: str = "batch"

    def __post_init__(self):
        check_range("self_reward_mse", "coef", self.coef, low=0.0)
        _check_common("self_reward_mse", self.beta_v, self.temperature)
        if self.scope not in SCOPES:
            raise RlobjInputError(f"self_reward_mse.scope: expected one of {SCOPES}, got {self.scope!r}")

    def has_minibatch_stats(self) -> bool:
        return self.balanced

    def minibatch_stats_reads(self) -> frozenset[str]:
        return frozenset({"rewards", "mask"})

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        r"""0-dim counts of the mini-batch: ``finished`` $N_f$ and ``correct`` $N_+$ (no values
        of the probe, which carries gradient per micro-batch)."""
        if not self.balanced:
            return {}
        rewards = state.require("rewards", "self_reward_mse").detach()
        finished = _finished(state)
        return {"finished": finished.sum().double(), "correct": ((rewards > 0.5) & finished).sum().double()}

    def weights(self, rewards: Tensor, finished: Tensor, counts: tuple[float, float] | None = None) -> Tensor:
        """$m_i w_i$: the class-balanced weights of the finished rows (0 on truncated rows).

        ``counts`` = $(N_f, N_+)$ of the mini-batch; None counts the rows given.
        """
        if not self.balanced:
            return finished.to(rewards.dtype)
        correct = (rewards > 0.5) & finished
        wrong = ~(rewards > 0.5) & finished
        if counts is None:
            counts = (float(finished.sum()), float(correct.sum()))
        total, n_correct = counts
        n_wrong = total - n_correct
        w_correct = total / (2 * n_correct) if n_correct > 0 else 0.0
        w_wrong = total / (2 * n_wrong) if n_wrong > 0 else 0.0
        zeros = torch.zeros_like(rewards)
        return torch.where(correct, zeros + w_correct, torch.where(wrong, zeros + w_wrong, zeros))

    def __call__(self, state: State) -> State:
        rewards = state.require("rewards", "self_reward_mse").detach()
        probe = _probe(state, "self_reward_mse")
        finished = _finished(state)
        score = self_reward_score(probe, self.beta_v, self.c, self.temperature)
        n_finished, n_correct = state.own_stats("finished"), state.own_stats("correct")
        counts = None if n_finished is None or n_correct is None else (float(n_finished), float(n_correct))
        weights = self.weights(rewards.to(score.dtype), finished, counts)
        per_row = self.coef * weights * (score - rewards.to(score.dtype)) ** 2
        last = (state.mask.cumsum(-1) == state.mask.sum(-1, keepdim=True)) & state.mask
        rows = None  # scope="micro_batch": the rows of the call (the part's own mask, locally)
        if self.scope == "batch" and state.normalizer is not None:
            rows = Normalizer(tokens=state.normalizer.seqs, seqs=state.normalizer.seqs, ranks=state.normalizer.ranks)
        elif self.scope == "batch":
            local = float(state.mask.any(-1).sum())
            rows = Normalizer(tokens=local, seqs=local)
        part = LossPart(broadcast_to_tokens(per_row, last), last, "own", rows)
        predicted = (score.detach() > 0.5) == (rewards > 0.5)
        accuracy = predicted[finished].float().mean() if bool(finished.any()) else torch.zeros(())
        return state.add_part("self_reward", part).add_metrics(
            **{"self_reward/score": score.detach()[finished].mean() if bool(finished.any()) else torch.zeros(()),
               "self_reward/accuracy": accuracy})


@dataclass(frozen=True)
class self_reward_advantage(Term):
    r"""LaSeR advantage: the GRPO advantage mixed with a z-scored self-reward.

    $$s_i = \mathrm{clip}(r_{s,i}, 0, 1)\ (0 \text{ if truncated}),\qquad
      A^\text{self}_i = \begin{cases}\frac{s_i - \mathrm{mean}_g s}{\mathrm{std}_g s + \varepsilon} & \mathrm{std}_g s > \tau_f\\
      A^\text{GRPO}_i & \text{otherwise}\end{cases},\qquad A_i = (1-\tau)A^\text{GRPO}_i + \tau A^\text{self}_i$$

    with $A^\text{GRPO}$ the group z-score of the rewards (Bessel std, $\varepsilon = 10^{-6}$).
    Yang et al., arXiv 2510.14943 (self-rewarding advantage integration); reference defaults
    $\tau = 0.1$, $\tau_f = 0.1$. The reference switches the mixing on only after warm-up steps
    (200 + 200); the trainer decides when to swap ``group_zscore`` for this term. No gradient
    flows through the score here (advantages are constants).

    Args:
        tau: $\tau \in [0, 1]$, weight of the self-reward advantage.
        std_floor: $\tau_f$: groups whose self-reward std is at most this fall back to GRPO.
        beta_v, c, temperature: see :func:`self_reward_score`.
        eps: $\varepsilon$ of both z-scores.
        eps_self: the $\varepsilon$ of the self-reward z-score alone (None: ``eps``). The
            reference (``ray_trainer.py``) divides the self-reward by the bare group std and
            the GRPO advantage by std + 1e-6: ``eps=1e-6, eps_self=0.0`` (``laser_recipe``).

    Example:
        >>> from rlobj import grpo, group_zscore
        >>> recipe = grpo.replace(group_zscore, self_reward_advantage(tau=0.1)) >> self_reward_mse(coef=0.1)
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("rewards", "token_rewards", "group_ids", "mask", f"extras:{_PROBE}")
    writes: ClassVar[tuple[str, ...]] = ("advantages",)
    may_read: ClassVar[tuple[str, ...]] = ("extras:truncated",)
    tau: float = 0.1
    std_floor: float = 0.1
    beta_v: float = 0.1
    c: float = -23.0
    temperature: float = 1.0
    eps: float = 1e-6
    eps_self: float | None = None

    def __post_init__(self):
        check_range("self_reward_advantage", "tau", self.tau, low=0.0, high=1.0)
        check_range("self_reward_advantage", "std_floor", self.std_floor, low=0.0)
        check_range("self_reward_advantage", "eps", self.eps, low=0.0)
        if self.eps_self is not None:
            check_range("self_reward_advantage", "eps_self", self.eps_self, low=0.0)
        _check_common("self_reward_advantage", self.beta_v, self.temperature)

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state, "self_reward_advantage").detach()
        group_ids = require_groups(state, "self_reward_advantage", minimum=2)
        probe = _probe(state, "self_reward_advantage").detach().to(rewards.dtype)
        score = torch.clamp(self_reward_score(probe, self.beta_v, self.c, self.temperature), 0.0, 1.0)
        score = torch.where(_finished(state), score, torch.zeros_like(score))

        def zscore(values, eps):
            std = group_std(values, group_ids)
            return torch.where(std > 0, (values - group_mean(values, group_ids)) / (std + eps),
                               torch.zeros_like(values)), std

        base, _ = zscore(rewards, self.eps)
        self_adv, self_std = zscore(score, self.eps if self.eps_self is None else self.eps_self)
        self_adv = torch.where(self_std > self.std_floor, self_adv, base)
        mixed = (1.0 - self.tau) * base + self.tau * self_adv
        return with_advantages(state, mixed).add_metrics(
            **{"self_reward/fallback_frac": (self_std <= self.std_floor).float().mean()})


@dataclass(frozen=True)
class pacs_loss(Term):
    r"""PACS: RLVR as supervised learning, a class-balanced cross-entropy on a policy score.

    $$\hat s_i = \beta\sum_t m_{i,t}\big(\log\pi_\theta(y_{i,t}) - \log\pi_\text{old}(y_{i,t})\big),\qquad
      \psi_i = \hat s_i - \frac{1}{|g|-1}\sum_{j\in g, j\ne i}\hat s_j,$$
    $$\mathcal L = \frac{1}{N}\sum_i w_i\big[-r_i\log\sigma(\psi_i) - (1-r_i)\log(1-\sigma(\psi_i))\big]$$

    Li et al., "Implicit Actor Critic Coupling via a Supervised Learning Framework for RLVR",
    arXiv 2509.02522 (the PACS objective); reference code ``pacs_core_algos.py``: $\beta = 1$,
    RLOO scores (``baseline="rloo"``; ``"zscore"`` = group z-score of $\hat s$ with
    $\varepsilon = 10^{-6}$, ``"none"`` = raw $\hat s$), ``weight_mode="question"``: in a group
    holding both classes $w_c = |g|/(2 n_c)$ (correct: $r_i > 0.5$), else $w = 1$. The mean
    divides by the number of rows, not by $\sum w$. It replaces the PPO surrogate entirely
    (writes the ``"policy"`` part; no clipping). At $\theta = \theta_\text{old}$, $\psi = 0$
    and the gradient is $\frac{\beta}{N}\sum_i w_i(\tfrac12 - r_i)\,\partial\psi_i$: REINFORCE
    with advantage $r - \tfrac12$ and an RLOO baseline.

    The score is $\log\pi_\text{old}$-anchored as in the reference code (the paper frames it as
    a log-ratio to a reference policy). The per-row loss sits on the last valid token, and the
    mean divides by the **global** number of non-empty rows $N$ (the normalizer's ``seqs`` over
    all micro-batches and ranks, times the data-parallel world size as every aggregation does;
    the rows of the call when no normalizer is given), so ``token_mean`` and the ``seq_mean_*``
    aggregations give the row mean of the mini-batch.

    Micro-batches and split groups: the baseline $\psi_i$ reads the whole group. With the
    trainer's mini-batch statistics (:meth:`minibatch_stats`: the detached scores of every row
    of the mini-batch) a micro-batch may hold any part of a group: it contributes
    $\frac1N\sum_{j}\big[w_j\ell_j + c_j(\hat s_j - \mathrm{sg}[\hat s_j])\big]$ over its rows,
    with $w_j\ell_j$ the row's loss on the whole mini-batch (detached) and
    $c_j = \partial\big(\sum_i w_i\ell(\psi_i)\big)/\partial\hat s_j$ the exact gradient of the
    mini-batch loss with respect to row $j$'s score. For ``"rloo"``
    $c_j = w_j\ell'(\psi_j) - \frac{1}{|g|-1}\sum_{i\in g, i\ne j} w_i\ell'(\psi_i)$; for
    ``"none"`` $c_j = w_j\ell'(\psi_j)$; for ``"zscore"``
    $c_j = \sum_{i\in g} w_i\ell'(\psi_i)\,\partial\psi_i/\partial\hat s_j$ with
    $\partial\psi_i/\partial\hat s_j = \frac{\delta_{ij} - 1/|g|}{\sigma_g+\varepsilon}
    - \frac{(\hat s_i-\mu_g)(\hat s_j-\mu_g)}{(|g|-1)\,\sigma_g(\sigma_g+\varepsilon)^2}$ (Bessel $\sigma_g$);
    all three are computed as one vector-Jacobian product. Summed over micro-batches this is
    the gradient of the whole mini-batch exactly. Without the statistics (a direct call) every
    group must be whole in the call, as the reference asserts.

    Args:
        beta: $\beta > 0$.
        baseline: ``"rloo"``, ``"zscore"`` or ``"none"``.
        balanced: class-balanced weights per group (reference ``use_weight=True``).

    Example:
        >>> from rlobj import seq_mean_token_mean
        >>> recipe = pacs_loss(beta=1.0) >> seq_mean_token_mean()
    """

    reads: ClassVar[tuple[str, ...]] = ("logp", "logp_old", "rewards", "group_ids", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:policy",)
    beta: float = 1.0
    baseline: str = "rloo"
    balanced: bool = True

    def __post_init__(self):
        check_range("pacs_loss", "beta", self.beta, low=0.0, low_open=True)
        if self.baseline not in ("rloo", "zscore", "none"):
            raise RlobjInputError(f"pacs_loss.baseline: expected 'rloo', 'zscore' or 'none', got {self.baseline!r}")

    def weights(self, rewards: Tensor, group_ids: Tensor) -> Tensor:
        """$w_i$: $|g|/(2n_c)$ in groups with both classes, 1 elsewhere (or 1 if not ``balanced``)."""
        if not self.balanced:
            return torch.ones_like(rewards)
        correct = (rewards > 0.5).to(rewards.dtype)
        size = group_count(group_ids).to(rewards.dtype)
        n_correct = group_sum(correct, group_ids)
        n_class = torch.where(correct > 0, n_correct, size - n_correct)
        mixed = (n_correct > 0) & (n_correct < size)
        return torch.where(mixed, size / (2 * n_class.clamp(min=1)), torch.ones_like(rewards))

    def _labels(self, state: State) -> Tensor:
        rewards = state.require("rewards", "pacs_loss").detach()
        if bool(((rewards < 0) | (rewards > 1)).any()):
            raise RlobjInputError(f"rewards: pacs_loss uses rewards as labels, expected values in [0, 1], got "
                                  f"{rewards[(rewards < 0) | (rewards > 1)][:5].tolist()}")
        return rewards

    def _score(self, state: State, logp: Tensor) -> Tensor:
        r"""$\hat s_i = \beta\sum_t m_{i,t}(\log\pi_\theta - \log\pi_\text{old})$."""
        return self.beta * masked_sum(logp - state.require("logp_old", "pacs_loss"), state.mask, dim=-1)

    def _rows(self, state: State, score: Tensor, labels: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
        r"""$(w_i\ell(\psi_i), \psi_i)$ of every row, groups as given."""
        if self.baseline == "rloo":
            psi = score - leave_one_out_mean(score, group_ids)
        elif self.baseline == "zscore":
            std = group_std(score, group_ids)
            centred = score - group_mean(score, group_ids)
            psi = torch.where(std > 0, centred / (std + 1e-6), torch.zeros_like(centred))
        else:
            psi = score
        labels = labels.to(psi.dtype)
        per_row = self.weights(labels, group_ids) * F.binary_cross_entropy_with_logits(psi, labels, reduction="none")
        return per_row, psi

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        r"""Per row of the mini-batch (``[batch]``): ``loss`` $w_i\ell(\psi_i)$, ``coef`` $c_i$
        (the gradient of the mini-batch's summed loss with respect to $\hat s_i$) and ``psi``."""
        labels = self._labels(state)
        group_ids = require_groups(state, "pacs_loss", minimum=2 if self.baseline != "none" else 1)
        with torch.enable_grad():
            score = self._score(state, state.logp.detach()).detach().requires_grad_(True)
            per_row, psi = self._rows(state, score, labels, group_ids)
            kept = state.mask.any(-1)  # rows without tokens carry no loss (no last token)
            total = torch.where(kept, per_row, torch.zeros((), dtype=per_row.dtype)).sum()
            (coef,) = torch.autograd.grad(total, score)
        return {"loss": per_row.detach(), "coef": coef.detach(), "psi": psi.detach()}

    def __call__(self, state: State) -> State:
        labels = self._labels(state)
        score = self._score(state, state.logp)
        loss, coef = state.own_stats("loss"), state.own_stats("coef")
        if loss is None or coef is None:
            group_ids = require_groups(state, "pacs_loss", minimum=2 if self.baseline != "none" else 1)
            per_row, psi = self._rows(state, score, labels, group_ids)
        else:
            per_row = loss.to(score.dtype) + coef.to(score.dtype) * (score - score.detach())
            psi = state.own_stats("psi")
        last = (state.mask.cumsum(-1) == state.mask.sum(-1, keepdim=True)) & state.mask
        if state.normalizer is not None:
            counts = Normalizer(tokens=state.normalizer.seqs, seqs=state.normalizer.seqs, ranks=state.normalizer.ranks)
        else:
            rows = float(state.mask.any(-1).sum())
            counts = Normalizer(tokens=rows, seqs=rows)
        part = LossPart(broadcast_to_tokens(per_row, last), last, "own", counts)
        psi = psi.detach()
        return state.add_part("policy", part).add_metrics(**{"pacs/psi_mean": psi.mean(),
                                                             "pacs/psi_std": psi.std() if psi.numel() > 1 else psi.sum() * 0})
