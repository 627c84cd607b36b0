"""Per-token credit: advantages reweighted token by token from a per-token signal in ``extras``.

* :class:`critique_token_advantage` (CAPO): tokens of reasoning steps that critiques flag as wrong.
* :class:`token_hidden_reward` (THR / NTHR): tokens by their influence on the correct responses.
* :class:`dependency_advantage_shaping` (VPPO): trajectories by their visual dependency (VPPO's
  token mask is :class:`~rlobj.terms.masks.token_selection.pivotal_token_mask`).

The signals (critique votes, influence scores, dependency scores) are computed by the trainer
or another term (the critique producer is pluggable) and passed in ``extras``; these terms hold
the arithmetic. They run in the batch stage after the outcome advantage
(``grpo.replace(group_zscore, group_zscore() >> term)``).
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import Fraction, NonNegative, OpenFraction
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import _token_extra, require_groups, with_advantages

__all__ = ["wrong_step_tokens", "critique_token_advantage", "token_hidden_reward",
           "dependency_advantage_shaping"]


# --------------------------------------------------------------------------- CAPO
def wrong_step_tokens(step_ends: Tensor, wrong_at_ends: Tensor) -> Tensor:
    r"""Spread a per-step flag (at each step's last token) over the tokens of that step.

    Step $k$ covers the tokens after the end of step $k-1$ up to and including its own end;
    tokens after the last step end belong to no step. Both inputs are bool ``"batch seq"``.
    """
    # step index of every token = number of step ends strictly before it
    index = torch.cumsum(step_ends.long(), dim=-1) - step_ends.long()
    out = torch.zeros_like(step_ends)
    for row in range(step_ends.shape[0]):
        ends = step_ends[row].nonzero().flatten()
        flags = wrong_at_ends[row, ends]
        covered = index[row] < ends.numel()
        out[row, covered] = flags[index[row, covered]]
    return out


class critique_token_advantage(Term,
                               stage="batch",
                               reads=("advantages", "mask", "extras:step_ends", "extras:step_wrong_votes"),
                               writes=("advantages",)):
    r"""CAPO-style token-level credit: tokens of steps that the critiques flag as wrong get a penalty.

    With $v_{i,k} \in [0, 1]$ the fraction of $M$ generative critiques (an LLM used as a
    generative process reward model) that flag step $k$ of response $i$ as wrong:

    $$A_{i,t} \leftarrow w_\text{whole}\,A_{i,t} - w_\text{process}\,\mathbb 1\big[t \in \text{step } k,\ v_{i,k} \ge \theta\big]$$

    $\theta = 0.5$ is majority voting; $\theta = 1$ flags a step only if every critique does
    (intersection); a small $\theta$ flags it if any does (union). The outcome advantage
    $A$ comes from the term before (``group_zscore``), so correct responses with a flawed step
    keep most of their credit while the flawed tokens are pushed down.

    Inputs: ``extras["step_ends"]`` (bool ``"batch seq"``, True at each step's last token) and
    ``extras["step_wrong_votes"]`` (float ``"batch seq"``, $v$ read at step ends). Producing
    the critiques (one pass of a judge model over the numbered steps, $M$ samples) is user
    code.

    Xie et al., "CAPO: Towards Enhancing LLM Reasoning through Verifiable Generative Credit
    Assignment", arXiv 2508.02298 (id not re-checked). UNVERIFIED (abstract only): the
    combination of outcome and process signals (the additive token advantage above), the
    weights ($w_\text{whole} = w_\text{process} = 1$ here) and the voting rule ($\theta = 0.5$).

    Args:
        whole_weight: $w_\text{whole} \ge 0$.
        process_weight: $w_\text{process} \ge 0$.
        vote_threshold: $\theta \in (0, 1]$.

    Example:
        >>> from rlobj import group_zscore, grpo
        >>> recipe = grpo.replace(group_zscore, group_zscore() >> critique_token_advantage())
    """

    whole_weight: NonNegative = 1.0
    process_weight: NonNegative = 1.0
    vote_threshold: OpenFraction = 0.5

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        ends = _token_extra(state, "step_ends", "critique_token_advantage", "bool")
        votes = _token_extra(state, "step_wrong_votes", "critique_token_advantage")
        outside = ends & ((votes < 0) | (votes > 1))
        if bool(outside.any()):
            raise RlobjInputError(f"extras['step_wrong_votes']: critique_token_advantage expected values in [0, 1] at "
                                  f"step ends, got {votes[outside][:5].tolist()}")
        wrong = wrong_step_tokens(ends, ends & (votes >= self.vote_threshold)) & state.mask
        shaped = self.whole_weight * advantages - self.process_weight * wrong.to(advantages.dtype)
        return with_advantages(state, per_token=torch.where(state.mask, shaped, torch.zeros_like(shaped))).add_metrics(
            **{"capo/wrong_token_frac": masked_mean(wrong.float(), state.mask)})


# --------------------------------------------------------------------------- THR
class token_hidden_reward(Term,
                          stage="batch",
                          reads=("advantages", "rewards", "group_ids", "mask", "extras:token_influence"),
                          writes=("advantages",)):
    r"""Token Hidden Reward: reweight token advantages by their influence on the group's correct responses.

    $s_{i,k}$ (``extras["token_influence"]``) is the influence of token $(i,k)$'s update on the
    log-likelihood of the correct responses $P$ of its group, e.g. NTHR's
    $s_{i,k} = g_{i,k}^\top M_+ h_{i,k}$ (prediction-error similarity times hidden-state
    similarity, summed over correct tokens). Groups whose rewards are all correct or all wrong
    are left unchanged. With $p_g = |P|/G$:

    * ``mode="thr"``: $\mathrm{THR}_{i,k} = A_{i,k}\,s_{i,k}$; dominant tokens
      $|\mathrm{THR}| > \tau = \beta\min_{j\in P}\overline{|\mathrm{THR}_{j,\cdot}|}$ get
      $A_{i,k}(1 + p\,\mathrm{sgn}\,\mathrm{THR}_{i,k})$ ($p > 0$: exploitation, greedy accuracy;
      $p < 0$: exploration, pass@k); the others keep $A$ (or 0 with ``thr_only``).
    * ``mode="nthr"`` (the predecessor, negative-token hidden reward): in incorrect responses,
      tokens with $s > \tau = \beta\min_{j\in P}\bar s_j$ get $\eta A$ with
      $\eta = 2|\tfrac12 - p_g|$; nothing else changes.

    Deng et al., "Token Hidden Reward: Steering Exploration-Exploitation in Group Relative Deep
    Reinforcement Learning", arXiv 2510.03669; NTHR: Deng et al., "On the Effect of Negative
    Gradient in Group Relative Deep Reinforcement Optimization" (NeurIPS 2025), Lemma 4.2 and
    Cor. 4.5, $\beta = 1$. UNVERIFIED (no THR code; reviews only): THR's dominance threshold
    (the NTHR-style anchor on $|\mathrm{THR}|$ here), the reweighting rule
    $A(1 + p\,\mathrm{sgn})$ and $p$ (tuned per model; 0.2 here, keep $|p| < 1$ to preserve
    signs). Computing $s$ needs hidden states and output distributions of the old policy; it is
    the trainer's job.

    Args:
        mode: ``"thr"`` or ``"nthr"``.
        p: $p \in (-1, 1)$ (``thr``).
        beta: $\beta \ge 0$, the anchor scale.
        thr_only: zero the advantage of non-dominant tokens (``thr``).
        threshold: correct iff $r > $ ``threshold``.

    Example:
        >>> from rlobj import group_zscore, grpo
        >>> recipe = grpo.replace(group_zscore, group_zscore() >> token_hidden_reward(p=0.2))
    """

    mode: str = "thr"
    p: float = 0.2
    beta: NonNegative = 1.0
    thr_only: bool = False
    threshold: float = 0.5

    def __post_init__(self):
        if self.mode not in ("thr", "nthr"):
            raise RlobjInputError(f"token_hidden_reward.mode: expected 'thr' or 'nthr', got {self.mode!r}")
        if not -1.0 < self.p < 1.0:
            raise RlobjInputError(f"token_hidden_reward.p: expected in (-1, 1), got {self.p}")

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        rewards = state.require("rewards")
        group_ids = require_groups(state)
        influence = _token_extra(state, "token_influence", "token_hidden_reward").to(advantages.dtype)
        correct = rewards > self.threshold
        mask = state.mask
        factor = torch.ones_like(advantages)
        signal = influence if self.mode == "nthr" else advantages * influence
        for gid in torch.unique(group_ids):
            rows = group_ids == gid
            accuracy = float(correct[rows].double().mean())
            if accuracy in (0.0, 1.0):
                continue
            anchor_rows = rows & correct & mask.any(-1)
            if not bool(anchor_rows.any()):
                continue
            scores = signal if self.mode == "nthr" else signal.abs()
            tau = self.beta * float(masked_mean(scores[anchor_rows], mask[anchor_rows], dim=-1).min())
            if self.mode == "nthr":
                hit = (rows & ~correct)[:, None] & mask & (influence > tau)
                factor = torch.where(hit, torch.full_like(factor, 2 * abs(0.5 - accuracy)), factor)
            else:
                dominant = rows[:, None] & mask & (signal.abs() > tau)
                reweight = 1 + self.p * torch.sign(signal)
                rest = torch.zeros_like(factor) if self.thr_only else factor
                factor = torch.where(dominant, reweight, torch.where(rows[:, None], rest, factor))
        shaped = advantages * factor
        changed = (factor != 1) & mask
        return with_advantages(state, per_token=shaped).add_metrics(
            **{"thr/reweighted_frac": masked_mean(changed.float(), mask)})


# --------------------------------------------------------------------------- VPPO
class dependency_advantage_shaping(Term,
                                   stage="batch",
                                   reads=("advantages", "mask", "extras:visual_dependency"),
                                   writes=("advantages",)):
    r"""VPPO trajectory-level advantage shaping: scale each response's advantage by its visual dependency.

    $$\bar S_i = \tfrac1{|y_i|}\textstyle\sum_t S_{i,t},\quad
      n_i = \mathrm{clip}\Big(\frac{\bar S_i - \min_j \bar S_j}{\max_j \bar S_j - \min_j \bar S_j}, 0, 1\Big),\quad
      \beta_\max = \beta_\min + \frac{1 - \beta_\min}{\bar n + 10^{-8}},\quad
      A_{i,t} \leftarrow \big(\beta_\min + n_i(\beta_\max - \beta_\min)\big) A_{i,t}$$

    with $\bar n$ the mean of $n_i$ over non-empty rows, so the factors average to 1 and keep
    the signs of the advantages; when $\max - \min \le 10^{-6}$ or fewer than two rows are
    non-empty, every factor is 1. $S$ is ``extras["visual_dependency"]`` (float
    ``"batch seq"``, $\ge 0$; :class:`rlobj.terms.rewards.perception.visual_dependency_score` writes it).

    Huang et al., "Spotlight on Token Perception for Multimodal Reinforcement Learning" (VPPO),
    arXiv 2510.09285; reference (huaixuheqing/VPPO-RL, ``dp_actor.update_policy``): $\beta_\min =
    0.9$ (training scripts; code default 0.8), dynamic $\beta_\max$. Warning: the reference
    takes min/max over the mini-batch and $\bar n$ per micro-batch; here both are over the
    whole rollout batch (the batch stage), so the factors average to 1 exactly over it.

    Args:
        beta_min: $\beta_\min \in [0, 1]$.

    Example:
        >>> from rlobj import group_zscore, grpo
        >>> recipe = grpo.replace(group_zscore, group_zscore() >> dependency_advantage_shaping())
    """

    beta_min: Fraction = 0.9

    def factors(self, dependency: Tensor, mask: Tensor) -> Tensor:
        r"""$\alpha_i$ per row (1 for empty rows)."""
        valid = mask.any(-1)
        mean = masked_mean(dependency.double(), mask, dim=-1)
        ones = torch.ones(mask.shape[0], dtype=torch.float64, device=mask.device)
        if int(valid.sum()) < 2:
            return ones
        low, high = mean[valid].min(), mean[valid].max()
        if float(high - low) <= 1e-6:
            return ones
        normalized = ((mean - low) / (high - low)).clamp(0, 1)
        beta_max = self.beta_min + (1 - self.beta_min) / (normalized[valid].mean() + 1e-8)
        return torch.where(valid, self.beta_min + normalized * (beta_max - self.beta_min), ones)

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        dependency = _token_extra(state, "visual_dependency", "dependency_advantage_shaping")
        if bool((dependency < 0).any()):
            raise RlobjInputError(f"extras['visual_dependency']: dependency_advantage_shaping expected values >= 0, "
                                  f"got {dependency[dependency < 0][:5].tolist()}")
        alpha = self.factors(dependency, state.mask).to(advantages.dtype)
        return with_advantages(state, per_token=alpha[:, None] * advantages).add_metrics(
            **{"vppo/alpha_max": alpha.max(), "vppo/alpha_min": alpha.min()})
