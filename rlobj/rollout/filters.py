r"""Batch filters: pure functions that decide which prompt groups of a rollout batch to train on.

They act on the batch, not on the loss, so they live in the rollout layer. In training each
is applied after scoring by a batch transform of :mod:`rlobj.train.transforms`
(``model.transforms``); the transforms that draw more rollouts (``dynamic_sampling``, ``dars``,
``self_curation``) resample the step's own prompts, never new prompts from the data stream, so
where a reference refills with fresh prompts (DAPO, RLPR) the step trains on the same prompts
resampled, or on fewer groups.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError, check_finite, check_shape
from rlobj.rollout._group_checks import _check_groups, _check_rows, _extremes, _groups_in_order
from rlobj.rollout.prof import ProfResult, prof_balanced_counts, prof_filter
from rlobj.terms.masks import zero_variance_groups

__all__ = ["StdFilterResult", "std_filter",
           # seed methods I (remaining)
           "informative_groups", "first_groups", "DynamicSamplingResult", "dynamic_sampling",
           "self_curation", "dars_cumulative_advantage", "dars_extra_rollouts", "rorecomp_priority",
           "CompensationStep", "compensation_step", "ProfResult", "prof_balanced_counts", "prof_filter"]


@dataclass(frozen=True)
class StdFilterResult:
    """What :func:`std_filter` returns.

    Attributes:
        keep: bool ``" batch"``, True for rows of kept groups.
        ema: the updated EMA of the mean group std (None before ``ema_start``); store it and
            pass it to the next call (it belongs in the checkpoint).
        group_std: float ``" batch"``, each row's group reward std.
    """

    keep: Tensor
    ema: float | None
    group_std: Tensor


def std_filter(rewards: Tensor, group_ids: Tensor, ema: float | None, step: int, beta: float = 0.5,
               rate: float = 0.99, ema_start: int = 6, filter_start: int = 11, unbiased: bool = True) -> StdFilterResult:
    r"""RLPR's std filter: keep a prompt only if its reward std is a large enough share of the running mean.

    $$\bar\sigma_t = \tfrac1{|\mathcal G|}\sum_g \sigma_g,\qquad
      \mathrm{EMA}_t = \begin{cases}\bar\sigma_t & \text{first update (step} = \texttt{ema\_start}\text{, or no EMA yet)}\\
      \rho\,\mathrm{EMA}_{t-1} + (1-\rho)\,\bar\sigma_t & \text{later}\end{cases},\qquad
      \text{keep } g \iff t < \texttt{filter\_start} \ \vee\ \sigma_g \ge \beta\,\mathrm{EMA}_t$$

    Low-std groups carry little learning signal for the (continuous) probability reward of
    :class:`rlobj.terms.rewards.likelihood.rlpr_reward`, whose noise the filter removes. Before
    ``ema_start`` the EMA is not tracked; before ``filter_start`` everything is kept. The
    reference refills the dropped groups with more prompts; the ``std_filter`` transform does
    not (the step trains on fewer groups).

    Yu et al. (OpenBMB), "RLPR", arXiv 2506.18254 (id not re-checked); reference defaults
    (OpenBMB/RLPR ``ray_trainer.py``): $\beta = 0.5$ (Qwen; 0.9 Llama, 1.0 Gemma), $\rho = 0.99$,
    EMA from step 6, filtering from step 11. UNVERIFIED: whether the comparison uses the EMA
    before or after this step's update (after, here, so the first filtered step is defined),
    and Bessel's correction in the group std (``unbiased``; on by default as in torch.std).

    Args:
        rewards: float ``" batch"`` sequence rewards.
        group_ids: int ``" batch"`` prompt ids.
        ema: the previous EMA (None at the start).
        step: the training step $t$ (0-based).
        beta: $\beta \ge 0$; 0 keeps every group.
        rate: $\rho \in [0, 1]$.
        ema_start, filter_start: the steps at which tracking and filtering begin.
        unbiased: Bessel-corrected group std (a group of one has std 0).

    Returns:
        A :class:`StdFilterResult`.

    Example:
        >>> import torch
        >>> # group stds .7071 and 0: EMA = .99 * .4 + .01 * .3536 = .3995; keep std >= .5 * .3995
        >>> result = std_filter(torch.tensor([0., 1., .5, .5]), torch.tensor([0, 0, 1, 1]), ema=0.4, step=20)
        >>> result.keep.tolist(), round(result.ema, 4)
        ([True, True, False, False], 0.3995)
    """
    if not isinstance(rewards, Tensor) or rewards.dim() != 1 or not rewards.is_floating_point():
        raise RlobjInputError(f"rewards: std_filter expected a float tensor of shape (batch,), got "
                              f"{tuple(rewards.shape) if isinstance(rewards, Tensor) else type(rewards).__name__}")
    check_shape("group_ids", group_ids, tuple(rewards.shape), "batch")
    check_finite("rewards", rewards)
    if beta < 0:
        raise RlobjInputError(f"std_filter.beta: expected >= 0, got {beta}")
    if not 0.0 <= rate <= 1.0:
        raise RlobjInputError(f"std_filter.rate: expected in [0, 1], got {rate}")
    unique, index = torch.unique(group_ids, return_inverse=True)
    stds = torch.zeros(unique.numel(), dtype=torch.float64)
    for g in range(unique.numel()):
        values = rewards[index == g].double()
        stds[g] = values.std(unbiased=unbiased) if values.numel() > 1 else 0.0
    mean_std = float(stds.mean())
    if step >= ema_start:
        ema = mean_std if ema is None else rate * ema + (1 - rate) * mean_std
    keep = torch.ones(rewards.shape, dtype=torch.bool, device=rewards.device)
    rows = index.cpu()  # stds live on the CPU; index them there, whatever the rewards' device
    if step >= filter_start and ema is not None:
        keep = (stds >= beta * ema)[rows].to(rewards.device)
    return StdFilterResult(keep=keep, ema=ema, group_std=stds[rows].to(device=rewards.device, dtype=rewards.dtype))


# --------------------------------------------------------------------------- DAPO dynamic sampling
def informative_groups(rewards: Tensor, group_ids: Tensor, keep_singletons: bool = True) -> Tensor:
    r"""DAPO's dynamic-sampling test: True for rows of groups whose rewards are not all equal.

    $$\text{keep } g \iff \mathrm{std}_g(r) > 0 \;\vee\; |g| = 1$$

    A group whose responses are all correct or all wrong has zero advantage under any
    group-relative baseline and only dilutes the batch (Yu et al., DAPO, arXiv 2503.14476,
    Eq. 11: $0 < |\{o_i \text{ correct}\}| < G$). The test is exact equality of the rewards
    (:func:`rlobj.terms.masks.groups.zero_variance_groups`), not a float std. verl's
    ``dapo_ray_trainer`` also keeps groups of a single response (``keep_singletons``).

    Args:
        rewards: float ``" batch"`` sequence rewards (or the filter metric, e.g. accuracy).
        group_ids: int ``" batch"`` prompt ids.
        keep_singletons: keep groups with one member (verl's rule).

    Returns:
        bool ``" batch"``.

    Example:
        >>> import torch
        >>> informative_groups(torch.tensor([1., 0., 1., 1.]), torch.tensor([0, 0, 1, 1])).tolist()
        [True, True, False, False]
    """
    _check_groups(rewards, group_ids, "informative_groups")
    keep = ~zero_variance_groups(rewards, group_ids)
    if keep_singletons:
        _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
        keep = keep | (counts[inverse] == 1)
    return keep


def first_groups(keep: Tensor, group_ids: Tensor, count: int) -> Tensor:
    """Rows of the first ``count`` groups (in order of first appearance) that ``keep`` marks.

    ``keep`` must be constant within a group. This is how DAPO trims an over-full batch: verl
    keeps the first ``train_batch_size * n`` trajectories of the accumulated batch.
    """
    if not isinstance(keep, Tensor) or keep.dtype != torch.bool or keep.dim() != 1:
        raise RlobjInputError(f"keep: first_groups expected a 1-D bool tensor, got "
                              f"{keep.dtype if isinstance(keep, Tensor) else type(keep).__name__}")
    _check_rows("group_ids", group_ids, "first_groups", float_values=False)
    check_shape("group_ids", group_ids, tuple(keep.shape), "batch")
    if count < 0:
        raise RlobjInputError(f"first_groups.count: expected >= 0, got {count}")
    chosen: set[int] = set()
    for gid in _groups_in_order(group_ids):
        rows = group_ids == gid
        if bool(keep[rows].any()) != bool(keep[rows].all()):
            raise RlobjInputError(f"keep: first_groups expected one value per group, group {gid} is mixed")
        if len(chosen) < count and bool(keep[rows].all()):
            chosen.add(gid)
    return keep & torch.tensor([g in chosen for g in group_ids.tolist()], dtype=torch.bool, device=keep.device)


@dataclass(frozen=True)
class DynamicSamplingResult:
    """What :func:`dynamic_sampling` returns.

    Attributes:
        batch: the kept rows of every round, concatenated (every key the sampler returned);
            ``batch["group_ids"]`` is renumbered ``0..groups-1`` in order of acceptance.
        groups: the number of groups in ``batch`` (``groups_needed`` unless a shortfall was allowed).
        rounds: the number of sampling rounds used.
        sampled_groups: the number of groups sampled over all rounds.
    """

    batch: dict
    groups: int
    rounds: int
    sampled_groups: int


def dynamic_sampling(sample: Callable[[int], Mapping[str, Tensor]], groups_needed: int, max_rounds: int = 10,
                     keep_singletons: bool = True, allow_shortfall: bool = False) -> DynamicSamplingResult:
    r"""DAPO dynamic sampling: sample rounds until ``groups_needed`` informative groups are collected.

    Round $k = 0, 1, \dots$ calls ``sample(k)``, which returns a mapping of tensors whose first
    axis is the batch, including ``"rewards"`` and ``"group_ids"``. Rows of groups kept by
    :func:`informative_groups` are accumulated; once at least ``groups_needed`` groups are
    collected, the first ``groups_needed`` of them (in sampling order) are returned, as verl
    trims the batch. ``max_rounds`` caps the rounds (verl ``max_num_gen_batches``, 10 in the
    DAPO recipe; 0 = no cap); when the cap is hit first this raises, as verl does, unless
    ``allow_shortfall`` returns the smaller batch.

    Yu et al., DAPO, arXiv 2503.14476, Sec. 3.2 and Eq. 11 (reference: generation batch 3x the
    train batch, e.g. 1536 prompts for 512).

    Args:
        sample: ``round -> {"rewards": float (batch,), "group_ids": int (batch,), ...}``.
        groups_needed: the train batch size in prompts ($\ge 1$).
        max_rounds: cap on sampling rounds (0: none).
        keep_singletons: see :func:`informative_groups`.
        allow_shortfall: return fewer groups instead of raising when the cap is hit.

    Returns:
        A :class:`DynamicSamplingResult`.

    Example:
        >>> import torch
        >>> rounds = [dict(rewards=torch.tensor([1., 1., 0., 1.]), group_ids=torch.tensor([0, 0, 1, 1])),
        ...           dict(rewards=torch.tensor([0., 0., 1., 0.]), group_ids=torch.tensor([0, 0, 1, 1]))]
        >>> out = dynamic_sampling(lambda k: rounds[k], groups_needed=2)
        >>> out.batch["rewards"].tolist(), out.batch["group_ids"].tolist(), out.rounds
        ([0.0, 1.0, 1.0, 0.0], [0, 0, 1, 1], 2)
    """
    if groups_needed < 1:
        raise RlobjInputError(f"dynamic_sampling.groups_needed: expected >= 1, got {groups_needed}")
    if max_rounds < 0:
        raise RlobjInputError(f"dynamic_sampling.max_rounds: expected >= 0 (0 = no cap), got {max_rounds}")
    pieces: list[dict] = []
    groups = sampled = rounds = 0
    while groups < groups_needed and (max_rounds == 0 or rounds < max_rounds):
        drawn = sample(rounds)
        rounds += 1
        if not isinstance(drawn, Mapping) or "rewards" not in drawn or "group_ids" not in drawn:
            raise RlobjInputError(f"sample: dynamic_sampling expected a mapping with 'rewards' and 'group_ids', "
                                  f"got {type(drawn).__name__} with keys {sorted(drawn) if isinstance(drawn, Mapping) else None}")
        rewards, group_ids = drawn["rewards"], drawn["group_ids"]
        _check_groups(rewards, group_ids, "dynamic_sampling (from sample)")
        for key, value in drawn.items():
            if not isinstance(value, Tensor) or value.shape[:1] != rewards.shape:
                raise RlobjInputError(f"sample[{key!r}]: dynamic_sampling expected a tensor with first axis "
                                      f"batch = {rewards.shape[0]}, got {getattr(value, 'shape', type(value).__name__)}")
        order = _groups_in_order(group_ids)
        sampled += len(order)
        keep = first_groups(informative_groups(rewards, group_ids, keep_singletons), group_ids, groups_needed - groups)
        accepted = [g for g in order if bool(keep[group_ids == g].any())]
        renumber = {g: groups + k for k, g in enumerate(accepted)}
        piece = {key: value[keep] for key, value in drawn.items()}
        piece["group_ids"] = torch.tensor([renumber[g] for g in group_ids[keep].tolist()],
                                          dtype=group_ids.dtype, device=group_ids.device)
        pieces.append(piece)
        groups += len(accepted)
    if groups < groups_needed and not allow_shortfall:
        raise RlobjInputError(
            f"dynamic_sampling: only {groups} of {groups_needed} groups had non-equal rewards after "
            f"{rounds} rounds (max_rounds={max_rounds}, {sampled} groups sampled); the prompts may be "
            "too easy or too hard. Raise max_rounds or pass allow_shortfall=True.")
    batch = {key: torch.cat([piece[key] for piece in pieces]) for key in pieces[0]}
    return DynamicSamplingResult(batch=batch, groups=groups, rounds=rounds, sampled_groups=sampled)


# --------------------------------------------------------------------------- SELF curation
def self_curation(greedy_rewards: Tensor, correct_reward: float = 1.0) -> Tensor:
    r"""SELF low-likelihood curation: train only on prompts whose greedy answer is wrong.

    $$\text{keep}_q = \mathbb 1\big[r(\hat y_q) \ne r_\text{correct}\big],\qquad
      \hat y_q = \text{greedy decode of } q \ (\texttt{do\_sample=False})$$

    A prompt the policy already solves greedily has a high-likelihood correct solution, and
    RLVR would sharpen it further at the expense of the others ("winner-take-all"); SELF
    spends the step on the rest. GRPO's $n$ samples are then drawn for the kept prompts only;
    when none is kept the step is skipped (all False). Greedy decoding and scoring are the
    trainer's job (one extra generation per prompt).

    Nguyen, La, Nguyen, Chawla, Nguyen, Doan, "The Reasoning Boundary Paradox", arXiv
    2510.02230, SELF; reference (mail-research/SELF-llm-interference, ``RayMaxPPOTrainer``):
    keep iff greedy reward != 1, GRPO $n = 8$, batch 128, lr 1e-6. The paper's forward-KL
    regulariser (off in the released script) is ``forward_kl`` in the objective.

    Args:
        greedy_rewards: float ``" prompts"``, the verifier's reward of each prompt's greedy answer.
        correct_reward: the reward of a correct answer (exact comparison, as the reference).

    Returns:
        bool ``" prompts"``: True for prompts to sample and train on.

    Example:
        >>> import torch
        >>> self_curation(torch.tensor([1., 0., 0.5, 1.])).tolist()
        [False, True, True, False]
    """
    _check_rows("greedy_rewards", greedy_rewards, "self_curation")
    check_finite("greedy_rewards", greedy_rewards)
    return greedy_rewards != correct_reward


# --------------------------------------------------------------------------- DARS
def dars_cumulative_advantage(accuracy: Tensor, use_std: bool = False) -> Tensor:
    r"""DARS's per-rollout cumulative advantage $S(p)$ of a group with binary rewards and accuracy $p$.

    $$S(p) = \frac1N\sum_i |A_i| = \begin{cases}2p(1-p) & \text{no std division (Dr. GRPO-style)}\\
      2\sqrt{p(1-p)} & \text{population-std z-score}\end{cases}$$

    Yang et al., "Depth-Breadth Synergy in RLVR" (DARS), arXiv 2508.13755, Sec. 3.
    """
    product = accuracy * (1 - accuracy)
    return 2 * product.clamp(min=0).sqrt() if use_std else 2 * product


def dars_extra_rollouts(correct: Tensor, rollouts: int = 8, schedule: str = "et", max_rollouts: int | None = None,
                        use_std: bool = False) -> Tensor:
    r"""DARS difficulty-adaptive allocation: how many extra rollouts each prompt gets in a second pass.

    With $N$ first-pass rollouts, $c$ correct, $p = c/N$ ($p = 0$ is read as $0.5/N$), and
    $A_\text{peak} = N\,S(\tfrac12)$ (:func:`dars_cumulative_advantage`):

    $$\Delta n = \begin{cases}0 & p \ge \tfrac12\\
      \min\!\Big(\Big\lceil \frac{T(p) - N S(p)}{S(p)} \Big\rceil,\; N_\max - N\Big) & \text{otherwise}\end{cases},
      \qquad T(p) = \begin{cases}A_\text{peak} & \text{ET (equal treatment)}\\
      2(1-p)\,A_\text{peak} & \text{HW (hardness-weighted)}\end{cases}$$

    so after merging, $(N + \Delta n)\,S(p)$ reaches the target (up to the ceiling and the cap):
    hard prompts, which GRPO's advantages under-weight, get more rollouts. The extra rollouts
    join the prompt's group before the advantages are computed.

    Yang et al., DARS, arXiv 2508.13755; reference (yangzhch6/DARS, ``schedule_ET`` /
    ``schedule_HW``): $N = 8$, $N_\max = 32$ (ET) / 64 (HW), no std normalisation. The ceiling
    is taken after subtracting $10^{-9}$ so float round-off never adds a rollout.

    Args:
        correct: int ``" prompts"``, correct first-pass rollouts per prompt ($0 \le c \le N$).
        rollouts: $N \ge 1$.
        schedule: ``"et"`` or ``"hw"``.
        max_rollouts: $N_\max \ge N$ (None: 32 for ET, 64 for HW).
        use_std: $S$ of the z-scored advantage instead of the mean-centred one.

    Returns:
        int64 ``" prompts"``: $\Delta n \ge 0$.

    Example:
        >>> import torch
        >>> # N = 8: p = 1/4: S = .375, (4 - 3) / .375 = 2.67 -> 3; p = 0 -> 1/16: S = .1171875, ceil(26.1) = 27 -> cap 24
        >>> dars_extra_rollouts(torch.tensor([2, 0, 4, 8])).tolist()
        [3, 24, 0, 0]
    """
    _check_rows("correct", correct, "dars_extra_rollouts", float_values=False)
    if rollouts < 1:
        raise RlobjInputError(f"dars_extra_rollouts.rollouts: expected >= 1, got {rollouts}")
    if schedule not in ("et", "hw"):
        raise RlobjInputError(f"dars_extra_rollouts.schedule: expected 'et' or 'hw', got {schedule!r}")
    cap = (32 if schedule == "et" else 64) if max_rollouts is None else max_rollouts
    if cap < rollouts:
        raise RlobjInputError(f"dars_extra_rollouts.max_rollouts: expected >= rollouts = {rollouts}, got {cap}")
    if bool(((correct < 0) | (correct > rollouts)).any()):
        bad = correct[(correct < 0) | (correct > rollouts)]
        raise RlobjInputError(f"correct: dars_extra_rollouts expected counts in [0, {rollouts}], got {bad[:5].tolist()}")
    accuracy = correct.double() / rollouts
    accuracy = torch.where(correct == 0, torch.full_like(accuracy, 0.5 / rollouts), accuracy)
    peak = rollouts * float(dars_cumulative_advantage(torch.tensor(0.5, dtype=torch.float64), use_std))
    target = peak if schedule == "et" else 2 * (1 - accuracy) * peak
    spread = dars_cumulative_advantage(accuracy, use_std)
    extra = torch.ceil((target - rollouts * spread) / spread - 1e-9).clamp(min=0, max=cap - rollouts)
    return torch.where(accuracy >= 0.5, torch.zeros_like(extra), extra).to(torch.int64)


# --------------------------------------------------------------------------- RoRecomp
def rorecomp_priority(rewards: Tensor, lengths: Tensor, group_ids: Tensor, alpha: float = 0.5,
                      threshold: float = 0.5) -> Tensor:
    r"""RoRecomp priority batch: the shortest correct and the longest incorrect responses of each group.

    In each group with $n_c$ correct ($r > \tau$) and $n_w$ incorrect responses:

    $$P_g = \operatorname{shortest}_{\lceil\alpha n_c\rceil}(\text{correct}) \;\cup\;
      \operatorname{longest}_{\lceil\alpha n_w\rceil}(\text{incorrect})$$

    Trained on with the advantages computed on the *full* group, the priority batch gives a
    clean signal for brevity (short right answers up, long wrong answers down); the other
    rows go to the replay buffer of :func:`compensation_step`. Ties in length go to the
    earlier row.

    Li et al., "RoRecomp: Enhancing Reasoning Efficiency via Rollout Response Recomposition",
    arXiv 2509.25958. UNVERIFIED (no code; abstract and reviews): the value of $\alpha$ (0.5
    here; reviewers say it is tuned), and whether advantages are computed on the full group
    or the selected subset (full group is the reading here: compute them first, then select
    rows, e.g. by masking the others out of the policy loss).

    Args:
        rewards: float ``" batch"``.
        lengths: ``" batch"`` response lengths (tokens, or tool calls in agentic runs).
        group_ids: int ``" batch"``.
        alpha: $\alpha \in (0, 1]$.
        threshold: $\tau$, correct iff $r > \tau$.

    Returns:
        bool ``" batch"``: True for rows of the priority batch.

    Example:
        >>> import torch
        >>> # correct lengths 5, 3, 9 -> ceil(.5 * 3) = 2 shortest: 3, 5; incorrect 4, 7 -> 1 longest: 7
        >>> rorecomp_priority(torch.tensor([1., 1., 1., 0., 0.]), torch.tensor([5, 3, 9, 4, 7]),
        ...                   torch.zeros(5, dtype=torch.long)).tolist()
        [True, True, False, False, True]
    """
    _check_groups(rewards, group_ids, "rorecomp_priority")
    if not isinstance(lengths, Tensor):
        raise RlobjInputError(f"lengths: rorecomp_priority expected a tensor, got {type(lengths).__name__}")
    check_shape("lengths", lengths, tuple(rewards.shape), "batch")
    if bool((lengths < 0).any()):
        raise RlobjInputError(f"lengths: rorecomp_priority expected values >= 0, got {lengths[lengths < 0][:5].tolist()}")
    if not 0.0 < alpha <= 1.0:
        raise RlobjInputError(f"rorecomp_priority.alpha: expected in (0, 1], got {alpha}")
    correct = (rewards > threshold).tolist()
    length = lengths.double().tolist()
    ids = group_ids.tolist()
    chosen: set[int] = set()
    for gid in _groups_in_order(group_ids):
        rows = [i for i, g in enumerate(ids) if g == gid]
        right = [i for i in rows if correct[i]]
        wrong = [i for i in rows if not correct[i]]
        chosen.update(_extremes(right, length, math.ceil(alpha * len(right)), largest=False))
        chosen.update(_extremes(wrong, length, math.ceil(alpha * len(wrong)), largest=True))
    return torch.tensor([i in chosen for i in range(len(ids))], dtype=torch.bool, device=rewards.device)


@dataclass(frozen=True)
class CompensationStep:
    """What :func:`compensation_step` returns.

    Attributes:
        buffer: the replay buffer after this step (oldest first); store it (it belongs in the checkpoint).
        compensation: the items of the compensation batch (oldest first), or None.
        discarded: items pushed out of a full buffer when the gate said no.
    """

    buffer: tuple
    compensation: tuple | None
    discarded: tuple


def compensation_step(buffer: tuple, items, capacity: int, batch_size: int, gate: bool = True) -> CompensationStep:
    r"""RoRecomp's compensation batches: a FIFO replay buffer of the non-priority responses.

    Push ``items`` (the rows :func:`rorecomp_priority` left out, in any form the trainer
    replays: indices, dicts of tensors, ...) to the back of ``buffer``. When it holds at least
    ``capacity`` items and ``gate`` is True (draw it with probability $p_\text{comp}$, or from
    a schedule), the ``batch_size`` oldest leave as a compensation batch for one extra update
    step, which keeps the long-correct and short-incorrect responses in training and prevents
    collapse; with ``gate`` False the buffer is cut back to ``capacity`` from the front.

    Li et al., RoRecomp, arXiv 2509.25958. UNVERIFIED: buffer capacity, batch size and the
    gate $p_\text{comp}$ (the paper tunes them; no code); dropping the oldest overflow when
    the gate is off is this implementation's choice.

    Args:
        buffer: the previous buffer (``()`` at the start).
        items: an iterable of new items.
        capacity: $\ge 1$.
        batch_size: $1 \le$ ``batch_size`` $\le$ ``capacity``.
        gate: whether a compensation batch may be formed this step.

    Returns:
        A :class:`CompensationStep`.

    Example:
        >>> out = compensation_step((0, 1), [2, 3, 4], capacity=4, batch_size=3)
        >>> out.compensation, out.buffer
        ((0, 1, 2), (3, 4))
    """
    if capacity < 1:
        raise RlobjInputError(f"compensation_step.capacity: expected >= 1, got {capacity}")
    if not 1 <= batch_size <= capacity:
        raise RlobjInputError(f"compensation_step.batch_size: expected in [1, capacity = {capacity}], got {batch_size}")
    queue = tuple(buffer) + tuple(items)
    if len(queue) < capacity:
        return CompensationStep(buffer=queue, compensation=None, discarded=())
    if gate:
        return CompensationStep(buffer=queue[batch_size:], compensation=queue[:batch_size], discarded=())
    overflow = len(queue) - capacity
    return CompensationStep(buffer=queue[overflow:], compensation=None, discarded=queue[:overflow])
