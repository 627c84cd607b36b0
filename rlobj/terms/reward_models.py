r"""Reward models from the RLVR literature: terms that compute or rewrite rewards before the advantage.

Each term runs in the batch stage and writes ``rewards`` (sequence level) or ``token_rewards``
(per step), so it goes *before* the advantage term of a recipe (``term >> grpo``). The
model-side quantities a term needs (a second forward pass, a judge's verdict, a reward
model's score, extracted answers) are computed by the trainer or the user and passed in
``extras`` under the names given in each docstring; the terms only hold the arithmetic.

* :class:`ppr_renorm`: PPR's ReNorm of process and outcome rewards (arXiv 2509.25598).
* :class:`co_reward`: Co-rewarding-I cross-view majority-vote rewards (arXiv 2508.00410).
* :class:`aepo_reward`: AEPO's adaptive exploration reward for multi-answer outputs (arXiv 2508.05731).
"""

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_finite, check_shape
from rlobj.terms._common import check_range, require_groups

__all__ = ["ppr_renorm", "co_reward", "majority_answer", "aepo_reward", "exploration_accuracy", "first_hit_rank"]


def _extra(state: State, key: str, by: str, shape: tuple[int, ...], dims: str, kind: str) -> Tensor:
    """``extras[key]`` checked for type, shape and kind (``"float"``, ``"bool"`` or ``"int"``)."""
    value = state.require(f"extras:{key}", by)
    if not isinstance(value, Tensor):
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a {kind} tensor of shape ({dims}), got {type(value).__name__}")
    check_shape(f"extras[{key!r}]", value, shape, dims)
    if kind == "bool" and value.dtype != torch.bool:
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a bool tensor, got {value.dtype}")
    if kind == "int" and (value.is_floating_point() or value.dtype == torch.bool or value.is_complex()):
        raise RlobjInputError(f"extras[{key!r}]: {by} expected an integer tensor, got {value.dtype}")
    if kind == "float" and not value.is_floating_point():
        raise RlobjInputError(f"extras[{key!r}]: {by} expected a float tensor, got {value.dtype}")
    return value


def _check_unit(name: str, values: Tensor, by: str, where: Tensor | None = None) -> None:
    """Raise unless every value (where ``where``) lies in [0, 1]."""
    check_finite(name, values, where=where)
    outside = (values < 0) | (values > 1)
    if where is not None:
        outside = outside & where
    if bool(outside.any()):
        raise RlobjInputError(f"{name}: {by} expected values in [0, 1], got {values[outside][:5].tolist()}")


# --------------------------------------------------------------------------- PPR ReNorm
@dataclass(frozen=True)
class ppr_renorm(Term):
    r"""PPR ReNorm: process and outcome rewards centred at 1/2 and added, one reward per step.

    $$\hat r_t = \big(r^p_t - \tfrac12\big) + \big(r^o - \tfrac12\big) = r^p_t + r^o - 1 \in [-1, 1]$$

    at every step-end token $t$ ($r^p_t \in [0,1]$: the principle-based process reward model's
    score divided by its maximum; $r^o \in [0, 1]$: the outcome reward, i.e. the incoming
    ``rewards``). The outcome is folded into every step, so ``rewards`` becomes 0 and the
    $\hat r_t$ are added to ``token_rewards``: a correct trajectory ($r^o = 1$) gets only
    non-negative step rewards, an incorrect one ($r^o = 0$) only non-positive ones (sign
    consistency), which is the point of ReNorm. Use it with an advantage on token returns
    (``batch_whiten``, REINFORCE++-style), the closest rlobj has to the paper's PPO + GAE.

    Inputs: ``extras["step_ends"]`` (bool, ``"batch seq"``, True at the last token of each
    reasoning step; every non-empty response needs at least one) and
    ``extras["process_rewards"]`` (float, ``"batch seq"``, read at the step ends).

    Xu, Li, Xing, Zhang, Li, Shi, "Hybrid Reward Normalization for Process-supervised
    Non-verifiable Agentic Tasks" (PPR), arXiv 2509.25598, ReNorm. UNVERIFIED (secondary
    sources only): the reward is placed at each step's end token (the most reasonable reading).

    Returns:
        The state with ``rewards`` = 0, ``token_rewards`` += $\hat r$ at step ends (no gradient)
        and the metrics ``ppr/step_reward`` (mean $\hat r$ over steps) and ``ppr/steps``
        (mean steps per response).

    Example:
        >>> from rlobj import batch_whiten, grpo, group_zscore
        >>> recipe = ppr_renorm() >> grpo.replace(group_zscore, batch_whiten())
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("rewards", "token_rewards", "mask", "extras:step_ends", "extras:process_rewards")
    writes: ClassVar[tuple[str, ...]] = ("rewards", "token_rewards")

    def __call__(self, state: State) -> State:
        outcome = state.require("rewards", "ppr_renorm").detach()
        shape = tuple(state.mask.shape)
        ends = _extra(state, "step_ends", "ppr_renorm", shape, "batch seq", "bool") & state.mask
        process = _extra(state, "process_rewards", "ppr_renorm", shape, "batch seq", "float")
        _check_unit("rewards", outcome, "ppr_renorm (the outcome reward r^o)")
        _check_unit("extras['process_rewards']", process, "ppr_renorm", where=ends)
        missing = state.mask.any(-1) & ~ends.any(-1)
        if bool(missing.any()):
            raise RlobjInputError(
                f"extras['step_ends']: ppr_renorm needs at least one step end per response, but rows "
                f"{missing.nonzero().flatten().tolist()[:10]} have none (mark the last token of the final step)")
        step = torch.where(ends, process.to(outcome.dtype) + outcome[:, None] - 1.0, torch.zeros((), dtype=outcome.dtype))
        base = state.token_rewards if state.token_rewards is not None else torch.zeros_like(step)
        return state.update(rewards=torch.zeros_like(outcome), token_rewards=base + step).add_metrics(
            **{"ppr/step_reward": step[ends].mean() if bool(ends.any()) else step.sum(),
               "ppr/steps": ends.sum(-1).to(outcome.dtype).mean()})


# --------------------------------------------------------------------------- Co-Reward
def majority_answer(answer_ids: list[int]) -> int:
    """Majority vote over extracted answers; ``-1`` (no answer) is ignored, ties go to the first seen.

    Returns -1 when no answer was extracted at all. ``Counter.most_common`` keeps insertion
    order among equal counts, so the answer that appears first in batch order wins a tie.
    """
    counts = Counter(a for a in answer_ids if a != -1)
    return counts.most_common(1)[0][0] if counts else -1


@dataclass(frozen=True)
class co_reward(Term):
    r"""Co-rewarding-I: reward agreement with the majority answer of the *other* view of the question.

    Every question $x$ has a rephrased twin $x'$ in the batch (its own group). With $a_i$ the
    final answer extracted from response $i$ (``-1`` when none) and $\ell(g)$ the majority
    answer of group $g$ (:func:`majority_answer`):

    $$r_i = \mathbb 1\big[a_i \ne -1 \,\wedge\, a_i = \ell(\mathrm{partner}(g_i))\big],\qquad
      \ell(\mathrm{partner}) = -1 \Rightarrow r_i = 0$$

    so the answers to $x$ are scored against the vote on $x'$ and vice versa; no ground truth is
    used (the incoming ``rewards`` are replaced). GRPO advantages are then computed inside each
    group as usual.

    Inputs: ``extras["answer_ids"]`` (int, ``" batch"``: an id per distinct canonical answer,
    e.g. of the last ``\boxed{}``; -1 for none) and ``extras["partner_group"]`` (int,
    ``" batch"``: the group id of the other view, the same for every row of a group; a group
    may be its own partner, which is plain self-consistency voting).

    Zhang, Zhu, Ge, Zhao, Zhou, Li, Feng, Yao, Han, "Co-rewarding: Stable Self-supervised RL
    for Eliciting Reasoning in Large Language Models", arXiv 2508.00410 (Co-rewarding-I);
    reference defaults (tmlr-group/Co-rewarding): 8 rollouts per view, KL loss 0.005 (k3).
    Co-rewarding-II (labels from an EMA teacher) is not implemented here.

    Returns:
        The state with ``rewards`` in $\{0, 1\}$ and the metrics ``co_reward/mean`` and
        ``co_reward/labelled_frac`` (rows whose partner has a label).

    Example:
        >>> from rlobj import grpo, k3_kl
        >>> recipe = co_reward() >> grpo >> k3_kl(beta=0.005)
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("group_ids", "extras:answer_ids", "extras:partner_group")
    writes: ClassVar[tuple[str, ...]] = ("rewards",)

    def __call__(self, state: State) -> State:
        group_ids = require_groups(state, "co_reward")
        answers = _extra(state, "answer_ids", "co_reward", (state.batch_size,), "batch", "int")
        partners = _extra(state, "partner_group", "co_reward", (state.batch_size,), "batch", "int")
        if bool((answers < -1).any()):
            raise RlobjInputError(f"extras['answer_ids']: expected ids >= 0 or -1 (no answer), got {answers[answers < -1][:5].tolist()}")
        rows_of: dict[int, list[int]] = {}
        for row, gid in enumerate(group_ids.tolist()):
            rows_of.setdefault(gid, []).append(row)
        partner_of = {}
        for gid, rows in rows_of.items():
            own = {int(partners[r]) for r in rows}
            if len(own) != 1 or next(iter(own)) not in rows_of:
                raise RlobjInputError(
                    f"extras['partner_group']: expected one existing group id per group, got {sorted(own)} for group {gid}")
            partner_of[gid] = own.pop()
        label_of = {gid: majority_answer(answers[rows].tolist()) for gid, rows in rows_of.items()}
        labels = torch.tensor([label_of[partner_of[g]] for g in group_ids.tolist()], device=answers.device)
        dtype = state.rewards.dtype if state.rewards is not None else state.logp.dtype
        rewards = ((answers == labels) & (answers != -1)).to(dtype)
        return state.update(rewards=rewards).add_metrics(
            **{"co_reward/mean": rewards.mean(), "co_reward/labelled_frac": (labels != -1).float().mean()})


# --------------------------------------------------------------------------- AEPO
def first_hit_rank(hits: Tensor, counts: Tensor) -> Tensor:
    r"""$k$ = 1-based position of the first True among the first ``counts[i]`` entries of ``hits[i]``; 0 if none.

    ``hits``: bool ``"batch N_max"`` (candidate $j$ of response $i$ lies in the target);
    ``counts``: int ``" batch"``, the number $N_i$ of candidates the response gave.
    """
    valid = torch.arange(hits.shape[1], device=hits.device)[None, :] < counts[:, None]
    found = hits & valid
    first = torch.argmax(found.int(), dim=1) + 1
    return torch.where(found.any(dim=1), first, torch.zeros_like(first))


def exploration_accuracy(counts: Tensor, ranks: Tensor) -> Tensor:
    r"""AEPO's accuracy term: $1/\sqrt{N k}$ on success (first hit at rank $k \ge 1$), $-1/N$ on failure ($k = 0$)."""
    counts = counts.double()
    success = 1.0 / torch.sqrt(counts * ranks.clamp(min=1).double())
    return torch.where(ranks > 0, success, -1.0 / counts)


@dataclass(frozen=True)
class aepo_reward(Term):
    r"""AEPO adaptive exploration reward: value per unit of exploration cost, $\eta = U / C$.

    A response proposes $N$ candidate answers (e.g. $N$ click points); $k$ is the rank of the
    first correct one ($k = 0$: none is):

    $$r = \begin{cases} r_\text{bad} & \text{format invalid}\\
      r_\text{fmt} + \frac{1}{\sqrt{N k}} & k \ge 1 \quad(U = +1,\ C = \sqrt{N k})\\
      r_\text{fmt} - \frac{1}{N} & k = 0 \quad(U = -1,\ C = N)\end{cases}$$

    so a hit is worth more when found early in a short list, and a miss costs less when the
    model explored more candidates (which encourages exploration on hard items). The incoming
    ``rewards`` are replaced.

    Inputs: ``extras["candidate_count"]`` (int $N \ge 1$, ``" batch"``),
    ``extras["first_hit_rank"]`` (int $k \in [0, N]$, ``" batch"``; :func:`first_hit_rank`
    computes it from per-candidate hits) and ``extras["format_valid"]`` (bool, ``" batch"``;
    the reference also rejects malformed JSON and three or more collinear points).

    Liu et al., "InfiGUI-G1: Advancing GUI Grounding with Adaptive Exploration Policy
    Optimization", arXiv 2508.05731 (id not re-checked), adaptive exploration reward; reference
    defaults (``aer_gui_reward_function``): $r_\text{fmt} = 1$, $r_\text{bad} = -1$, GRPO advantages.

    Example:
        >>> from rlobj import grpo
        >>> recipe = aepo_reward() >> grpo
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("extras:candidate_count", "extras:first_hit_rank", "extras:format_valid")
    writes: ClassVar[tuple[str, ...]] = ("rewards",)
    format_reward: float = 1.0
    invalid_reward: float = -1.0

    def __call__(self, state: State) -> State:
        shape = (state.batch_size,)
        counts = _extra(state, "candidate_count", "aepo_reward", shape, "batch", "int")
        ranks = _extra(state, "first_hit_rank", "aepo_reward", shape, "batch", "int")
        valid = _extra(state, "format_valid", "aepo_reward", shape, "batch", "bool")
        if bool((valid & (counts < 1)).any()):
            raise RlobjInputError(f"extras['candidate_count']: expected N >= 1 for valid responses, got {counts[valid & (counts < 1)][:5].tolist()}")
        if bool((valid & ((ranks < 0) | (ranks > counts))).any()):
            bad = valid & ((ranks < 0) | (ranks > counts))
            raise RlobjInputError(
                f"extras['first_hit_rank']: expected 0 <= k <= N, got k={ranks[bad][:5].tolist()} for N={counts[bad][:5].tolist()}")
        accuracy = exploration_accuracy(counts.clamp(min=1), ranks.clamp(min=0))
        dtype = state.rewards.dtype if state.rewards is not None else state.logp.dtype
        rewards = torch.where(valid, self.format_reward + accuracy, torch.full_like(accuracy, self.invalid_reward)).to(dtype)
        return state.update(rewards=rewards).add_metrics(
            **{"aepo/hit_frac": (valid & (ranks > 0)).float().mean(), "aepo/candidates": counts.float().mean()})
