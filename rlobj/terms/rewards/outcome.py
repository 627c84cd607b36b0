"""Sequence rewards from paper-specific signals: terms that compute or rewrite ``rewards``.

Each term runs in the batch stage and writes ``rewards``, so it goes *before* the advantage
term of a recipe (``term >> grpo``). The model-side quantities a term needs (a second forward
pass, a judge's verdict, extracted answers) are computed by the trainer or the user and passed
in ``extras`` under the names given in each docstring; the terms only hold the arithmetic.

* :class:`co_reward`: Co-rewarding-I cross-view majority-vote rewards (arXiv 2508.00410).
* :class:`aepo_reward`: AEPO's adaptive exploration reward for multi-answer outputs (arXiv 2508.05731).
* :class:`conciseness_reward`: CRF, correctness-gated conciseness bonus (arXiv 2511.09158).
* :class:`gcpo_reward`: GCPO contrastive auxiliary-construction reward and length reward (arXiv 2506.07160).

Rewards read off the policy's own likelihoods (SAR, RLPR) are in
:mod:`rlobj.terms.rewards.likelihood`; step rewards (PPR, VSRM) in :mod:`rlobj.terms.rewards.process`.
"""

from collections import Counter
from typing import Annotated

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative, Positive, Range
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_finite
from rlobj.terms._common import require_extra as _extra
from rlobj.terms._common import require_groups

__all__ = ["majority_answer", "co_reward", "first_hit_rank", "exploration_accuracy", "aepo_reward",
           "conciseness_reward", "gcpo_reward"]


def _check_unit(name: str, values: Tensor, by: str, where: Tensor | None = None) -> None:
    """Raise unless every value (where ``where``) lies in [0, 1]."""
    check_finite(name, values, where=where)
    outside = (values < 0) | (values > 1)
    if where is not None:
        outside = outside & where
    if bool(outside.any()):
        raise RlobjInputError(f"{name}: {by} expected values in [0, 1], got {values[outside][:5].tolist()}")


# --------------------------------------------------------------------------- Co-Reward
def majority_answer(answer_ids: list[int]) -> int:
    """Majority vote over extracted answers; ``-1`` (no answer) is ignored, ties go to the first seen.

    Returns -1 when no answer was extracted at all. ``Counter.most_common`` keeps insertion
    order among equal counts, so the answer that appears first in batch order wins a tie.
    """
    counts = Counter(a for a in answer_ids if a != -1)
    return counts.most_common(1)[0][0] if counts else -1


class co_reward(Term,
                stage="batch",
                reads=("group_ids", "extras:answer_ids", "extras:partner_group"),
                writes=("rewards",)):
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

    def __call__(self, state: State) -> State:
        group_ids = require_groups(state)
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


class aepo_reward(Term,
                  stage="batch",
                  reads=("extras:candidate_count", "extras:first_hit_rank", "extras:format_valid"),
                  writes=("rewards",)):
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
    defaults (``aer_gui_reward_function``): $r_\text{fmt} = 1$, $r_\text{bad} = -1$; the released
    run (InfiXAI/InfiGUI-G1 ``recipe/infigui-g1/run_7b.sh``) uses RLOO advantages
    (``adv_estimator=rloo``), clip 0.2 / 0.4: ``aepo_recipe``.

    Example:
        >>> from rlobj import grpo
        >>> recipe = aepo_reward() >> grpo  # the reference's whole recipe: aepo_recipe (RLOO)
    """

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


# --------------------------------------------------------------------------- CRF
class conciseness_reward(Term,
                         stage="batch",
                         reads=("rewards", "group_ids", "extras:conciseness"),
                         writes=("rewards",)):
    r"""Conciseness Reward Function: a correct answer's reward grows with its conciseness score.

    $$\hat r_i = r_i\,\big[1 + \alpha\,c_i\,(s_t + d_q)\big],\qquad
      s_t = s_0\max\big(0, 1 - t/T\big),\qquad d_q = 1 - \mathrm{acc}_g$$

    $c_i \in [0, 1]$: the conciseness score of a trained conciseness reward model
    (``extras["conciseness"]``, ``" batch"``; the paper's 3B CRM gives values in [0.1, 1]);
    $s_t$: an annealing coefficient at training step $t$ (counted in the term state, one per
    call; $T$ = ``decay_steps``, 0 = constant $s_0$); $d_q$: the difficulty of the question,
    one minus the fraction of correct responses ($r > 0.5$) in its group. Multiplicative gating:
    a wrong answer ($r_i = 0$) gets nothing, so conciseness never pays without correctness.

    Wang, Li, Gong, Liu, Zhang, Liu, Zhao, "Efficient Reasoning via Reward Model",
    arXiv 2511.09158. UNVERIFIED (only reviewers' restatements of the formula were available,
    no code): the value of $\alpha$ (1 here), the annealing schedule (linear decay here, off by
    default), and the difficulty factor ($1 - $ group accuracy here; ``difficulty="none"``
    sets $d_q = 0$).

    Args:
        alpha: $\alpha \ge 0$.
        s0: $s_0 \ge 0$, the annealing coefficient at step 0.
        decay_steps: $T \ge 0$ (0: no annealing).
        difficulty: ``"group_error"`` or ``"none"``.

    Example:
        >>> from rlobj import grpo
        >>> recipe = conciseness_reward(alpha=1.0) >> grpo
    """

    alpha: NonNegative = 1.0
    s0: NonNegative = 1.0
    decay_steps: Annotated[int, Range(ge=0)] = 0
    difficulty: str = "group_error"

    def __post_init__(self):
        if self.difficulty not in ("group_error", "none"):
            raise RlobjInputError(f"conciseness_reward.difficulty: expected 'group_error' or 'none', got {self.difficulty!r}")

    def anneal(self, step: int) -> float:
        """$s_t$."""
        return self.s0 if self.decay_steps == 0 else self.s0 * max(0.0, 1.0 - step / self.decay_steps)

    def __call__(self, state: State) -> State:
        rewards = state.require("rewards")
        concise = _extra(state, "conciseness", "conciseness_reward", (state.batch_size,), "batch", "float").detach()
        _check_unit("extras['conciseness']", concise, "conciseness_reward")
        step = int(state.own_state(0))
        difficulty = torch.zeros_like(rewards)
        if self.difficulty == "group_error":
            group_ids = require_groups(state)
            for gid in torch.unique(group_ids):
                rows = group_ids == gid
                difficulty[rows] = 1.0 - (rewards[rows] > 0.5).to(rewards.dtype).mean()
        bonus = self.alpha * concise.to(rewards.dtype) * (self.anneal(step) + difficulty)
        return state.update(rewards=rewards * (1 + bonus)).set_own_state(step + 1).add_metrics(
            **{"crf/bonus": (rewards * bonus).mean(), "crf/anneal": self.anneal(step)})


# --------------------------------------------------------------------------- GCPO
class gcpo_reward(Term,
                  stage="batch",
                  reads=("rewards", "group_ids", "mask", "extras:uses_aux"),
                  writes=("rewards",)):
    r"""GCPO group contrastive masking of an auxiliary-construction reward, plus a length reward.

    In each group, $G_\text{aux}$ = responses that use an auxiliary construction
    (``extras["uses_aux"]``, bool ``" batch"``), $G_\text{no}$ = the others, and
    $\Delta_g = \mathrm{acc}(G_\text{aux}) - \mathrm{acc}(G_\text{no})$ (accuracy = fraction
    with $r > 0.5$):

    $$M_g = \begin{cases}+1 & \Delta_g > \varepsilon\\ -1 & \Delta_g < -\varepsilon\\ 0 & \text{otherwise, or a subgroup empty}\end{cases}
      \qquad r_i \leftarrow r_i + \lambda_\text{aux} M_g\,\mathbb 1[\text{aux}_i]
      + \lambda_\text{len}\,\min\!\big(|y_i| / L, 1\big)\,\mathbb 1[r_i > 0.5]$$

    so a construction is rewarded only in groups where constructing helped, and punished
    where it hurt. The incoming ``rewards`` are $R_\text{acc} + R_\text{format}$.

    Wang et al., "GeometryZero: Improving Geometry Solving for LLM with Group Contrastive Policy
    Optimization", arXiv 2506.07160 (Findings ACL 2026). UNVERIFIED (no code available; review
    pages only): $\varepsilon$ (0 here), $M = 0$ when a subgroup is empty, and the length
    reward's form (the correctness-gated, bounded $\min(|y|/L, 1)$ here, with $L = 4096$ and
    $\lambda_\text{len} = 1$; set ``length_coef=0`` to switch it off).

    Args:
        eps: $\varepsilon \ge 0$.
        aux_coef: $\lambda_\text{aux} \ge 0$.
        length_coef: $\lambda_\text{len} \ge 0$.
        length_target: $L > 0$ tokens.

    Example:
        >>> from rlobj import grpo
        >>> recipe = gcpo_reward(eps=0.0) >> grpo
    """

    eps: NonNegative = 0.0
    aux_coef: NonNegative = 1.0
    length_coef: NonNegative = 1.0
    length_target: Positive = 4096.0

    def contrastive_mask(self, correct: Tensor, aux: Tensor, group_ids: Tensor) -> Tensor:
        """$M_g$ per sequence."""
        sign = torch.zeros(correct.shape, dtype=torch.float64, device=correct.device)
        for gid in torch.unique(group_ids):
            rows = group_ids == gid
            with_aux, without = rows & aux, rows & ~aux
            if not (bool(with_aux.any()) and bool(without.any())):
                continue
            gap = float(correct[with_aux].double().mean() - correct[without].double().mean())
            sign[rows] = 1.0 if gap > self.eps else (-1.0 if gap < -self.eps else 0.0)
        return sign

    def __call__(self, state: State) -> State:
        rewards = state.require("rewards")
        group_ids = require_groups(state)
        aux = _extra(state, "uses_aux", "gcpo_reward", (state.batch_size,), "batch", "bool")
        correct = rewards > 0.5
        sign = self.contrastive_mask(correct, aux, group_ids).to(rewards.dtype)
        lengths = state.mask.sum(-1).to(rewards.dtype)
        length_bonus = torch.clamp(lengths / self.length_target, max=1.0) * correct.to(rewards.dtype)
        new = rewards + self.aux_coef * sign * aux.to(rewards.dtype) + self.length_coef * length_bonus
        return state.update(rewards=new).add_metrics(
            **{"gcpo/mask_mean": sign.mean(), "gcpo/aux_frac": aux.float().mean(), "gcpo/length_bonus": length_bonus.mean()})
