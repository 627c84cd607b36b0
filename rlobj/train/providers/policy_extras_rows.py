r"""Providers (and one transform) that mark rows or score tokens of a rollout batch: RL-PLUS's
off-policy rows, DPH-RL's stored initial-policy samples, VOGUE's noisy-branch rows and VPPO's
visual dependency.

Random draws are per row, seeded from (seed, data step, the row's index in the global batch), so micro-batching and
batch composition change nothing; model work runs without gradient in ``ctx.models.chunks``.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.providers.base import Provider, register_provider
from rlobj.train.stages import Batch, Score, Transform

__all__ = ["OffPolicyRows", "InitialPolicySamples", "InitialPolicyRows", "NoisyBranchRows", "VisualDependency",
           "solved_groups"]


def _seed(*keys: Any) -> int:
    digest = hashlib.blake2b(repr(tuple(keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**62)


# --------------------------------------------------------------------------- RL-PLUS
@register_provider
class OffPolicyRows(Provider):
    r"""``extras:off_policy`` ``[batch, seq]`` bool for RL-PLUS's :class:`~rlobj.terms.mis_exploration_pg`
    (Dong et al., arXiv 2508.00222): the response tokens of rows not sampled by $\pi_\text{old}$.

    A row is external when (a) its record says so (``record[record_key]`` true: a demonstration a
    sampler or data loader put into the group), or (b) its sampling log-probs
    (``rollout.logp_rollout``) differ from the trainer's recomputed ``logp_old`` by more than
    ``tolerance`` nats on average over its tokens: replayed rows (RoRecomp), rows of another
    engine or an annealed temperature (EAD). On an on-policy batch whose ``logp_old`` is the
    rollout's own, no row is marked and the term is the plain unclipped policy gradient.
    Rows a sampler/transform marks in ``batch.extras["off_policy"]`` win (the trainer keeps them).

    Args:
        tolerance: mean $|\log\pi_\text{rollout} - \log\pi_\text{old}|$ per token above which a
            row counts as off-policy (numerical engine/trainer mismatch stays below the default).
        record_key: record field that marks an external response (None: records not read).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:off_policy",)

    def __init__(self, tolerance: float = 0.1, record_key: str | None = "off_policy"):
        if not tolerance >= 0:
            raise RlobjInputError(f"OffPolicyRows.tolerance: expected a value >= 0, got {tolerance!r}")
        self.tolerance, self.record_key = float(tolerance), record_key

    def batch(self, ctx, batch, inputs):
        rollout = batch.rollout
        mask = rollout.response_mask.bool()
        gap = (rollout.logp_rollout.float() - inputs["logp_old"].detach().float()).abs()
        mean_gap = torch.where(mask, gap, 0.0).sum(-1) / mask.sum(-1).clamp(min=1)
        rows = mean_gap > self.tolerance
        if self.record_key is not None:
            flagged = [isinstance(r, dict) and bool(r.get(self.record_key, False)) for r in batch.records]
            rows = rows | torch.tensor(flagged, dtype=torch.bool, device=rows.device)
        return {"extras:off_policy": rows[:, None] & mask}


# --------------------------------------------------------------------------- DPH-RL
def solved_groups(rewards: Tensor, group_ids: Tensor, threshold: float = 1.0) -> list[list[int]]:
    """Rows of each group of at least two rows whose every reward is ``>= threshold`` (solved k/k)."""
    groups: dict[int, list[int]] = {}
    for row, group in enumerate(group_ids.tolist()):
        groups.setdefault(group, []).append(row)
    solved = rewards.float() >= threshold
    return [rows for rows in groups.values() if len(rows) >= 2 and bool(solved[rows].all())]


def _reference_logp(ctx, rollout) -> Tensor:
    logp, _ = ctx.models.no_grad_logprobs(rollout, ctx.models.reference)
    return logp.float()


class InitialPolicySamples(Transform):
    r"""DPH-RL's $D_\text{pef}$ buffer (Li et al., arXiv 2509.07430): stored samples of the initial
    policy, appended to every later batch for :class:`~rlobj.terms.dph_divergence`.

    At its first call (the first RL step, where the policy *is* the initial policy $\pi_0$ and
    ``ctx.models.reference`` is its frozen copy) it keeps up to ``capacity`` groups that $\pi_0$
    solved $k/k$ (every reward ``>= threshold``), with their token log-probs under $\pi_0$,
    and marks them in that batch. At every later call it appends ``groups_per_step`` stored
    groups (cycling through the buffer) as new groups. It attaches ``extras["dph_rows"]`` (True
    on the stored rows) and ``extras["logp_init"]`` ($\log\pi_0$ of every row: stored values
    for the appended rows, the reference's for the batch's own, so ``kl_penalty(against="init")``
    reads the same slot correctly). Stored groups are all-correct, so group-normalised
    advantages give them 0: only the divergence acts on them, as in the reference code. The
    appended rows were not sampled by the current policy: the batch becomes ``on_policy=False``.

    The buffer is plain data in :meth:`state_dict` (checkpoints resume it). YAML:
    ``transforms: [{rlobj.train.providers.policy_extras_rows.InitialPolicySamples: {groups_per_step: 1}}]``.

    Args:
        threshold: reward at or above which a response counts as correct.
        groups_per_step: stored groups appended per step.
        capacity: most groups kept.
    """

    def __init__(self, threshold: float = 1.0, groups_per_step: int = 1, capacity: int = 64):
        for name, value in (("groups_per_step", groups_per_step), ("capacity", capacity)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RlobjInputError(f"InitialPolicySamples.{name}: expected an int >= 0, got {value!r}")
        self.threshold, self.groups_per_step, self.capacity = float(threshold), groups_per_step, capacity
        self._groups: list[list[dict]] = []
        self._collected = False
        self._cursor = 0

    def __call__(self, ctx, batch: Batch) -> Batch:
        if batch.scores is None:
            raise RlobjInputError("InitialPolicySamples: the batch is not scored (put the transform after scoring)")
        rollout = batch.rollout
        logp_init = _reference_logp(ctx, rollout)
        marked = torch.zeros(len(batch), dtype=torch.bool, device=rollout.response_ids.device)
        first = not self._collected
        if first:
            self._collected = True
            for rows in solved_groups(batch.rewards, rollout.group_ids, self.threshold)[:self.capacity]:
                self._groups.append([self._row(batch, logp_init, r) for r in rows])
                marked[rows] = True
        own = dict(batch.extras, dph_rows=marked, logp_init=logp_init.to(rollout.response_ids.device))
        batch = Batch(rollout=rollout, records=batch.records, scores=batch.scores, extras=own,
                      metrics=dict(batch.metrics), on_policy=batch.on_policy)
        stored = None if first else self._take(ctx, batch)
        metrics = {"dph/stored_groups": float(len(self._groups)), "dph/appended_rows": float(len(stored or ()))}
        if stored is not None:
            batch = Batch.concat([batch, stored], int(ctx.pad_token_id))
        batch.metrics.update(metrics)
        return batch

    @staticmethod
    def _row(batch: Batch, logp_init: Tensor, row: int) -> dict:
        r = batch.rollout
        valid = r.response_mask[row].bool()
        score = batch.scores[row]
        return {"prompt": r.prompt_ids[row][r.prompt_mask[row].bool()].tolist(),
                "response": r.response_ids[row][valid].tolist(), "logp_rollout": r.logp_rollout[row][valid].tolist(),
                "logp_init": logp_init[row][valid.to(logp_init.device)].tolist(),
                "finished": not bool(r.truncated[row]), "record": batch.records[row], "reward": float(score.reward),
                "token_rewards": None if score.token_rewards is None else list(score.token_rewards),
                "fields": dict(score.fields)}

    def _take(self, ctx, batch: Batch) -> Batch | None:
        if not self._groups or self.groups_per_step == 0:
            return None
        rows, groups = [], []
        for k in range(self.groups_per_step):
            group = self._groups[(self._cursor + k) % len(self._groups)]
            rows += group
            groups += [k] * len(group)
        self._cursor = (self._cursor + self.groups_per_step) % len(self._groups)
        device = batch.rollout.response_ids.device
        rollout = batch_from_rows([torch.tensor(r["prompt"], dtype=torch.long) for r in rows],
                                  [torch.tensor(r["response"], dtype=torch.long) for r in rows],
                                  [torch.tensor(r["logp_rollout"]) for r in rows], groups,
                                  [r["finished"] for r in rows], int(ctx.pad_token_id), device)
        width = rollout.response_ids.shape[1]
        logp_init = torch.zeros(len(rows), width)
        for i, r in enumerate(rows):
            logp_init[i, :len(r["logp_init"])] = torch.tensor(r["logp_init"])
        extras = {}
        for key, value in batch.extras.items():
            shape = (len(rows), width) if value.dim() >= 2 else (len(rows),)
            extras[key] = torch.zeros(shape, dtype=value.dtype, device=value.device)
        extras["dph_rows"] = torch.ones(len(rows), dtype=torch.bool, device=device)
        extras["logp_init"] = logp_init.to(device=device, dtype=batch.extras["logp_init"].dtype)
        scores = [Score(r["reward"], r["token_rewards"], r["fields"]) for r in rows]
        return Batch(rollout=rollout, records=[r["record"] for r in rows], scores=scores, extras=extras,
                     on_policy=False)

    def state_dict(self) -> dict:
        return {"groups": self._groups, "collected": self._collected, "cursor": self._cursor}

    def load_state_dict(self, state: dict) -> None:
        self._groups = list(state.get("groups", []))
        self._collected = bool(state.get("collected", False))
        self._cursor = int(state.get("cursor", 0))


@register_provider
class InitialPolicyRows(Provider):
    r"""``extras:dph_rows`` ``[batch]`` bool and ``extras:logp_init`` ``[batch, seq]`` for DPH-RL's
    :class:`~rlobj.terms.dph_divergence` (and ``kl_penalty(against="init")``).

    ``logp_init``: $\log\pi_0(y_t)$ of every row under ``ctx.models.reference`` (the policy at
    the first RL step), no grad. ``dph_rows``: the rows of the :class:`InitialPolicySamples`
    transform when it runs (it attaches both slots; this provider then computes nothing).
    Without it only the first RL step has samples of $\pi_0$: its groups solved $k/k$ (every
    reward ``>= threshold``) are marked; later rows come from the trained policy and are never
    marked, so ``dph_divergence`` stops acting (a warning says so). Add the transform to train
    with the paper's stored $D_\text{pef}$ samples.

    Args:
        threshold: reward at or above which a response counts as correct.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:dph_rows", "extras:logp_init")

    def __init__(self, threshold: float = 1.0):
        self.threshold = float(threshold)
        self._first = True

    def batch(self, ctx, batch, inputs):
        if "dph_rows" in batch.extras and "logp_init" in batch.extras:
            return {}
        out = {}
        if "extras:logp_init" in self.needed and "logp_init" not in batch.extras:
            out["extras:logp_init"] = _reference_logp(ctx, batch.rollout)
        if "extras:dph_rows" in self.needed and "dph_rows" not in batch.extras:
            rows = torch.zeros(len(batch), dtype=torch.bool, device=batch.rollout.response_ids.device)
            if self._first:
                for group in solved_groups(inputs["rewards"], inputs["group_ids"], self.threshold):
                    rows[group] = True
            elif not getattr(self, "_warned", False):
                self._warned = True
                warnings.warn("dph_divergence: no InitialPolicySamples transform, so no stored samples of the "
                              "initial policy reach later batches and extras['dph_rows'] is all False; add "
                              "rlobj.train.providers.policy_extras_rows.InitialPolicySamples to transforms:", stacklevel=2)
            out["extras:dph_rows"] = rows
        self._first = False
        return out

    def state_dict(self) -> dict:
        return {"first": self._first}

    def load_state_dict(self, state: dict) -> None:
        self._first = bool(state.get("first", True))


# --------------------------------------------------------------------------- VOGUE
@register_provider
class NoisyBranchRows(Provider):
    r"""``extras:noisy_branch`` ``[batch]`` bool for VOGUE's :class:`~rlobj.terms.vogue_bonus`
    (Liu et al., arXiv 2510.01444): which rows take the noisy branch.

    Each row is an independent Bernoulli draw with the annealed probability
    $p_s$ = :func:`~rlobj.rollout.perception.annealed_branch_probability` (``step``, ``total_steps``,
    ``start``, ``end``, ``schedule``) at the data step $s$ = ``ctx.step``, drawn by
    :func:`~rlobj.rollout.perception.noisy_branch_rows` with a generator seeded from (``seed``,
    the row's index in the global batch) and the step, so a row's draw depends on nothing else. The marked rows get
    VOGUE's uncertainty bonus (its perturbed view comes from ``PerturbedContext``); the rollout
    itself was sampled in the plain context. UNVERIFIED: VOGUE's schedule and constants were
    not available; the defaults are placeholders (as the term's).

    Args:
        start, end: branch probability at step 0 and at ``total_steps`` and after.
        total_steps: steps of the annealing.
        schedule: ``"linear"`` or ``"cosine"``.
        seed: seed of the draws (None: the run's seed).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:noisy_branch",)

    def __init__(self, start: float = 0.5, end: float = 0.0, total_steps: int = 1000, schedule: str = "linear",
                 seed: int | None = None):
        from rlobj.rollout.perception import annealed_branch_probability

        annealed_branch_probability(0, total_steps, start, end, schedule)  # validates the settings
        self.start, self.end, self.total_steps, self.schedule, self.seed = start, end, total_steps, schedule, seed

    def probability(self, step: int) -> float:
        from rlobj.rollout.perception import annealed_branch_probability

        return annealed_branch_probability(int(step), self.total_steps, self.start, self.end, self.schedule)

    def batch(self, ctx, batch, inputs):
        from rlobj.rollout.perception import noisy_branch_rows

        p = self.probability(ctx.step)
        seed = ctx.seed if self.seed is None else self.seed
        flags = [bool(noisy_branch_rows(1, p, seed=_seed(seed, ctx.row_offset + row), step=int(ctx.step))[0])
                 for row in range(len(batch))]
        return {"extras:noisy_branch": torch.tensor(flags, dtype=torch.bool, device=batch.rollout.response_ids.device)}


# --------------------------------------------------------------------------- VPPO
@register_provider
class VisualDependency(Provider):
    r"""``extras:visual_dependency`` ``[batch, seq]`` for VPPO's :class:`~rlobj.terms.dependency_advantage_shaping`
    and :class:`~rlobj.terms.pivotal_token_mask` (Huang et al., arXiv 2510.09285).

    $S_{i,t}$ = :func:`rlobj.terms.rewards.perception.visual_dependency` (``logp_perturbed``, ``logp_old``,
    ``mask``), the same function the term ``visual_dependency_score`` calls. ``logp_perturbed``
    is the batch's ``extras["logp_perturbed"]`` when a sampler or provider already gave it, else
    :class:`~rlobj.train.providers.policy.PerturbedContext`'s computation with ``perturbation``
    (the old policy on a perturbed prompt, per-row draws, no grad). In a text-only model the
    perturbation masks prompt spans (the stand-in for VPPO's blackened image patches).

    Args:
        perturbation: arguments of ``PromptSpanMask`` (as ``PerturbedContext``).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:visual_dependency",)

    def __init__(self, perturbation: dict[str, Any] | None = None):
        from rlobj.train.providers.policy import PerturbedContext

        self.perturbation = perturbation
        self._context = PerturbedContext(perturbation)
        self._context.needed = frozenset({"extras:logp_perturbed"})

    def batch(self, ctx, batch, inputs):
        from rlobj.terms.rewards import visual_dependency

        perturbed = inputs["extras"].get("logp_perturbed")
        if perturbed is None:
            perturbed = self._context.batch(ctx, batch, inputs)["extras:logp_perturbed"]
        mask = batch.rollout.response_mask.bool()
        score = visual_dependency(perturbed.float(), inputs["logp_old"].detach().float(), mask)
        return {"extras:visual_dependency": score}
