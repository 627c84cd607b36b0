r"""Data strategies (:class:`~rlobj.train.data_loops.DataStrategy`) from the data-loop papers.

* :class:`DifficultyCurriculum`: CLPO's online curriculum (difficulty bands from rollout
  accuracy) with a problem-restructuring hook;
* :class:`HintScaffold`: SEELE's hint whose length follows an item-response fit of difficulty;
* :class:`HardFocus`: DRIVE's hard-focus curriculum (the hardest prompts are kept and revisited);
* :class:`DomainMixture`: MoDoMoDo-style mixture weights over domains, fitted from per-domain
  progress.

All are chosen in YAML under ``data.strategy`` (``class_path`` / ``init_args``) and read the
run's :class:`~rlobj.train.prompt_stats.PromptStats`. Ties are broken by prompt id, so a
selection is a pure function of the statistics and the step: every rank picks the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError, import_dotted
from rlobj.train.data_loops import DataStrategy, Selection, with_prompt_id
from rlobj.train.providers.base import Provider, register_provider

__all__ = ["DifficultyCurriculum", "HintScaffold", "HardFocus", "DomainMixture", "hint_fraction",
           "mixture_weights", "allocate", "DifficultyKLScale"]


def _fraction(name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RlobjInputError(f"{name}: expected a number in [{low}, {high}], got {value!r}")
    return float(value)


def _callable(spec: Any, where: str) -> Callable | None:
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str) and "." in spec:
        return import_dotted(spec, where)
    raise RlobjInputError(f"{where}: expected a callable or a dotted path to one, got {spec!r}")


class _Pool(DataStrategy):
    """Remembers the base records it served, so prompts can be revisited (plain data in state)."""

    def __init__(self):
        self.pool: dict[str, dict] = {}

    def _remember(self, records: list[dict]) -> None:
        for record in records:
            self.pool.setdefault(str(record["prompt_id"]), dict(record))

    def _seen(self, selection: Selection, min_attempts: int) -> list[tuple[str, float]]:
        """(prompt id, recent solve rate) of pooled prompts tried ``>= min_attempts`` times, not in ``fresh``."""
        fresh = {str(r["prompt_id"]) for r in selection.fresh}
        out = []
        for pid in sorted(self.pool):
            rate = selection.stats.recent_rate(pid)
            if pid not in fresh and rate is not None and selection.stats.attempts(pid) >= min_attempts:
                out.append((pid, rate))
        return out

    def state_dict(self) -> dict:
        return {"pool": {pid: dict(record) for pid, record in self.pool.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.pool = {pid: dict(record) for pid, record in (state.get("pool") or {}).items()}


class DifficultyCurriculum(_Pool):
    r"""CLPO's online curriculum ("CLPO: Curriculum Learning meets Policy Optimization for LLM
    Reasoning"; authors' code: csuking/CLPO): difficulty bands from rollout accuracy.

    A prompt's difficulty is its recent solve rate $r$ (the last ``window`` rewards of
    :class:`~rlobj.train.prompt_stats.PromptStats`): **hard** if $r \le$ ``hard_upper``,
    **medium** if ``medium_lower`` $< r \le$ ``medium_upper``, **easy** above (the thresholds
    0.3 / 0.3 / 0.7 of the authors' ``clpo_qwen3_8b.sh``). Each step, at most
    $\lfloor f \cdot \text{count} \rfloor$ slots ($f$ = ``revisit_fraction``) go to prompts seen
    before, medium ones first (closest to $r = 0.5$ first), then hard ones (highest $r$ first);
    easy prompts are retired. The other slots take the stream's fresh prompts in order.

    Problem restructuring: CLPO has the policy rewrite hard problems into simpler ones and
    medium problems into diverse paraphrases with the same answer, and trains on the rewritten
    groups that are neither all right nor all wrong. Here ``restructure(record, kind)`` (``kind``
    ``"simplify"`` for hard, ``"diversify"`` for medium revisits) returns the rewritten record
    or None (keep the original); the rewritten record gets ``prompt_id = "<id>/<kind>"`` and
    ``parent = <id>``. No rewriter ships with rlobj (a tiny arithmetic model cannot write
    problems); the hook takes any callable, e.g. one that calls an LLM.

    Warning:
        In the authors' code the rewriting happens inside the step (rewrite, roll out, keep
        informative groups). rlobj schedules the rewritten problem as a revisit at a later step.
        The authors' half KL coefficient for hard prompts is ``kl_penalty(scale_key="kl_scale")``
        with the :class:`DifficultyKLScale` provider (labels from the step's own groups, as there).

    Args:
        hard_upper, medium_lower, medium_upper: band thresholds on the recent solve rate.
        revisit_fraction: most of each step's prompts that may be revisits.
        min_attempts: attempts before a prompt's band counts.
        restructure: None, a callable ``(record, kind) -> record | None`` or its dotted path.
    """

    def __init__(self, hard_upper: float = 0.3, medium_lower: float = 0.3, medium_upper: float = 0.7,
                 revisit_fraction: float = 0.5, min_attempts: int = 1, restructure: Any = None):
        super().__init__()
        self.hard_upper = _fraction("DifficultyCurriculum.hard_upper", hard_upper)
        self.medium_lower = _fraction("DifficultyCurriculum.medium_lower", medium_lower)
        self.medium_upper = _fraction("DifficultyCurriculum.medium_upper", medium_upper)
        if not self.medium_lower <= self.medium_upper:
            raise RlobjInputError(f"DifficultyCurriculum: medium_lower {medium_lower} must be <= medium_upper "
                                  f"{medium_upper}")
        self.revisit_fraction = _fraction("DifficultyCurriculum.revisit_fraction", revisit_fraction)
        if isinstance(min_attempts, bool) or not isinstance(min_attempts, int) or min_attempts < 1:
            raise RlobjInputError(f"DifficultyCurriculum.min_attempts: expected an int >= 1, got {min_attempts!r}")
        self.min_attempts = min_attempts
        self.restructure = _callable(restructure, "DifficultyCurriculum.restructure")
        self._counts = {"hard": 0, "medium": 0, "restructured": 0}

    def band(self, rate: float) -> str:
        """``"hard"``, ``"medium"``, ``"easy"`` (or ``"between"`` when the bands leave a gap)."""
        if rate <= self.hard_upper:
            return "hard"
        if self.medium_lower < rate <= self.medium_upper:
            return "medium"
        return "easy" if rate > self.medium_upper else "between"

    def select(self, selection: Selection) -> list[dict]:
        seen = self._seen(selection, self.min_attempts)
        medium = sorted((p for p in seen if self.band(p[1]) == "medium"), key=lambda p: (abs(p[1] - 0.5), p[0]))
        hard = sorted((p for p in seen if self.band(p[1]) == "hard"), key=lambda p: (-p[1], p[0]))
        revisits = (medium + hard)[:int(math.floor(self.revisit_fraction * selection.count))]
        chosen = []
        for pid, rate in revisits:
            kind = "simplify" if self.band(rate) == "hard" else "diversify"
            chosen.append(self._rewrite(self.pool[pid], kind))
        self._counts = {"hard": sum(self.band(r) == "hard" for _, r in revisits),
                        "medium": sum(self.band(r) == "medium" for _, r in revisits),
                        "restructured": sum("parent" in r for r in chosen)}
        fresh = selection.fresh[:selection.count - len(chosen)]
        self._remember(fresh)
        return chosen + fresh

    def _rewrite(self, record: dict, kind: str) -> dict:
        if self.restructure is None:
            return dict(record)
        new = self.restructure(dict(record), kind)
        if new is None:
            return dict(record)
        if not isinstance(new, dict) or "prompt" not in new:
            raise RlobjInputError(f"DifficultyCurriculum.restructure: expected a record with a 'prompt' or None, "
                                  f"got {new!r}")
        pid = str(record["prompt_id"])
        return {**new, "prompt_id": f"{pid}/{kind}", "parent": pid}

    def metrics(self) -> dict[str, float]:
        return {f"curriculum_{k}": float(v) for k, v in self._counts.items()}


def hint_fraction(target: float, ability: float, difficulty: float, slope: float, max_hint: float = 1.0) -> float:
    r"""The hint fraction at which the Rasch model predicts success probability ``target``.

    $$ h^\star = \operatorname{clip}\Big(\frac{\operatorname{logit}(p^\star) - \theta + b}{\alpha},\ 0,\ h_\max\Big) $$

    Example:
        >>> round(hint_fraction(0.5, ability=0.0, difficulty=2.0, slope=4.0), 4)
        0.5
    """
    if slope <= 0:
        return max_hint if ability - difficulty < math.log(target / (1 - target)) else 0.0
    value = (math.log(target / (1 - target)) - ability + difficulty) / slope
    return min(max(value, 0.0), max_hint)


class HintScaffold(DataStrategy):
    r"""SEELE's capability-adaptive hints ("Staying in the Sweet Spot: Responsive Reasoning
    Evolution via Capability-Adaptive Hint Scaffolding"): a solution prefix whose
    length makes the predicted solve probability equal ``target``.

    The run's statistics are fitted by the Rasch model with a hint covariate
    (:meth:`~rlobj.train.prompt_stats.PromptStats.rasch_fit`,
    $\Pr = \sigma(\theta - b_j + \alpha h)$); each selected prompt gets the hint fraction
    :func:`hint_fraction` of its item ($b_j$ of the prompt, or of its domain with
    ``item="domain"``; unseen items take the mean fitted difficulty), rounded to ``levels``
    steps when given. The record's prompt becomes ``template.format(prompt=..., hint=...)``
    with ``hint = solution[:round(len(solution) * h)]``, and ``hint_fraction = h`` is recorded
    so the next fit sees (hint, outcome) pairs.

    Warning:
        SEELE fits the model per problem within one step over several rollout rounds; the
        authors' code was not available to us. rlobj fits across steps (every earlier
        attempt is a round) and over the items the statistics know. ``target = 0.5`` is our
        reading of the paper's "sweet spot" (loss descent is fastest near 50% accuracy).

    Args:
        target: success probability the hint aims at.
        solution_key: record field holding the full solution (default ``completion``).
        template: how the hint joins the prompt (``{prompt}``, ``{hint}``).
        item: ``"prompt"`` or ``"domain"`` (items sharing ``record["domain"]`` share $b$).
        ability_window: steps per ability block of the fit (None: one ability).
        prior_std, hint_prior: priors of the fit (see ``rasch_fit``).
        max_hint: largest hint fraction.
        levels: round $h$ to multiples of ``1/levels`` (None: exact).
    """

    def __init__(self, target: float = 0.5, solution_key: str = "completion", template: str = "{hint} {prompt}",
                 item: str = "prompt", ability_window: int | None = None, prior_std: float | None = 2.0,
                 hint_prior: tuple[float, float] = (4.0, 2.0), max_hint: float = 1.0, levels: int | None = None):
        self.target = _fraction("HintScaffold.target", target)
        if not 0.0 < self.target < 1.0:
            raise RlobjInputError(f"HintScaffold.target: expected a probability strictly inside (0, 1), got {target!r}")
        if "{prompt}" not in template or "{hint}" not in template:
            raise RlobjInputError(f"HintScaffold.template: must contain '{{prompt}}' and '{{hint}}', got {template!r}")
        if item not in ("prompt", "domain"):
            raise RlobjInputError(f"HintScaffold.item: expected 'prompt' or 'domain', got {item!r}")
        if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int) or levels < 1):
            raise RlobjInputError(f"HintScaffold.levels: expected an int >= 1 or None, got {levels!r}")
        self.solution_key, self.template, self.item = solution_key, template, item
        self.ability_window, self.prior_std, self.hint_prior = ability_window, prior_std, tuple(hint_prior)
        self.max_hint, self.levels = _fraction("HintScaffold.max_hint", max_hint), levels
        self._mean_hint = 0.0

    def fraction_for(self, record: dict, stats) -> float:
        """The hint fraction of ``record`` under the current fit."""
        fit = stats.rasch_fit(self.item, self.ability_window, self.prior_std, self.hint_prior)
        key = str(record["prompt_id"]) if self.item == "prompt" else str(record.get("domain", "default"))
        known = list(fit.difficulty.values())
        default = sum(known) / len(known) if known else 0.0
        h = hint_fraction(self.target, fit.ability, fit.difficulty.get(key, default), fit.hint_slope, self.max_hint)
        return round(h * self.levels) / self.levels if self.levels else h

    def select(self, selection: Selection) -> list[dict]:
        out = []
        for record in selection.fresh:
            if self.solution_key not in record:
                raise RlobjInputError(f"HintScaffold: record {record.get('prompt_id')!r} has no {self.solution_key!r} "
                                      "field (the solution the hint is cut from); set solution_key")
            h = self.fraction_for(record, selection.stats)
            solution = str(record[self.solution_key])
            hint = solution[:round(len(solution) * h)]
            out.append({**record, "prompt": self.template.format(prompt=record["prompt"], hint=hint),
                        "hint_fraction": h})
        self._mean_hint = sum(r["hint_fraction"] for r in out) / max(len(out), 1)
        return out

    def metrics(self) -> dict[str, float]:
        return {"hint_fraction_mean": self._mean_hint}


class HardFocus(_Pool):
    r"""DRIVE's hard-focus curriculum ("DRIVE: Data Curation Best Practices for RLVR in Competitive
    Code Generation"): the hardest prompts seen so far are kept
    and revisited every step.

    The pool holds the ``pool_size`` prompts with the lowest recent solve rate among those tried
    ``>= min_attempts`` times whose rate is below ``retire_at`` (solved prompts leave it). Each
    step the $\lfloor f \cdot \text{count} \rfloor$ hardest ($f$ = ``hard_fraction``, ties by
    prompt id) are served again; the other slots take the stream's fresh prompts.

    Warning:
        DRIVE runs this as its second RL stage on a small hard set with 64 rollouts per prompt
        (set ``rollout.group_size``); the exact retention schedule is not in the abstract and we
        found no public code: the pool size and retirement threshold are ours.

    Args:
        hard_fraction: share of each step's prompts drawn from the hard pool.
        pool_size: most prompts kept.
        retire_at: recent solve rate at or above which a prompt leaves the pool.
        min_attempts: attempts before a prompt can enter the pool.
    """

    def __init__(self, hard_fraction: float = 0.5, pool_size: int = 64, retire_at: float = 1.0, min_attempts: int = 1):
        super().__init__()
        self.hard_fraction = _fraction("HardFocus.hard_fraction", hard_fraction)
        self.retire_at = _fraction("HardFocus.retire_at", retire_at)
        for name, value in (("pool_size", pool_size), ("min_attempts", min_attempts)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RlobjInputError(f"HardFocus.{name}: expected an int >= 1, got {value!r}")
        self.pool_size, self.min_attempts = pool_size, min_attempts
        self._revisits, self._pool_rate = 0, 0.0

    def select(self, selection: Selection) -> list[dict]:
        seen = [p for p in self._seen(selection, self.min_attempts) if p[1] < self.retire_at]
        hardest = sorted(seen, key=lambda p: (p[1], p[0]))[:self.pool_size]
        keep = {pid for pid, _ in hardest}
        fresh_ids = {str(r["prompt_id"]) for r in selection.fresh}
        self.pool = {pid: r for pid, r in self.pool.items() if pid in keep or pid in fresh_ids
                     or selection.stats.attempts(pid) < self.min_attempts}
        revisits = hardest[:int(math.floor(self.hard_fraction * selection.count))]
        self._revisits = len(revisits)
        self._pool_rate = sum(r for _, r in hardest) / len(hardest) if hardest else 0.0
        fresh = selection.fresh[:selection.count - len(revisits)]
        self._remember(fresh)
        return [dict(self.pool[pid]) for pid, _ in revisits] + fresh

    def metrics(self) -> dict[str, float]:
        return {"hard_revisits": float(self._revisits), "hard_pool_solve_rate": self._pool_rate}


def mixture_weights(progress: dict[str, float], temperature: float, floor: float) -> dict[str, float]:
    r"""$w_d = (1-\epsilon)\,\mathrm{softmax}(g / T)_d + \epsilon / D$ over domains in sorted order.

    Example:
        >>> w = mixture_weights({"a": 0.0, "b": 0.0}, temperature=0.1, floor=0.2)
        >>> w["a"], w["b"]
        (0.5, 0.5)
    """
    names = sorted(progress)
    top = max(progress[n] / temperature for n in names)
    exp = {n: math.exp(progress[n] / temperature - top) for n in names}
    total = sum(exp.values())
    return {n: (1 - floor) * exp[n] / total + floor / len(names) for n in names}


def allocate(weights: dict[str, float], count: int) -> dict[str, int]:
    """Slots per domain by largest remainder (ties: sorted domain name); sums to ``count``.

    Example:
        >>> allocate({"a": 0.5, "b": 0.3, "c": 0.2}, 4)
        {'a': 2, 'b': 1, 'c': 1}
    """
    names = sorted(weights)
    total = sum(weights.values())
    exact = {n: count * weights[n] / total for n in names}
    counts = {n: int(math.floor(exact[n])) for n in names}
    order = sorted(names, key=lambda n: (-(exact[n] - counts[n]), n))
    for n in order[:count - sum(counts.values())]:
        counts[n] += 1
    return counts


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of ``(step, rate)`` points (0 with fewer than two steps)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


class DomainMixture(DataStrategy):
    r"""Mixture weights over domains fitted from per-domain progress (after "MoDoMoDo: Multi-Domain
    Data Mixtures for Multimodal LLM Reinforcement Learning").

    Each domain $d$ has its own source; record ``i`` of domain ``d`` gets ``prompt_id = "d:i"``
    and ``domain = d``. After every step the progress $g_d$ of a domain is the least-squares
    slope of its per-step success rate over its last ``window`` steps tried
    (:meth:`~rlobj.train.prompt_stats.PromptStats.domain_step_rates`), and the weights become
    :func:`mixture_weights` ($w = (1-\epsilon)\,\mathrm{softmax}(g/T) + \epsilon/D$): domains
    that are improving get more prompts, and every domain keeps at least $\epsilon / D$. The
    step's slots are split by :func:`allocate` (largest remainder), and each domain's records
    are read in order from its own cursor.

    Warning:
        MoDoMoDo fits a model that predicts the post-training score from the mixture, over many
        pilot runs, and trains once with the best predicted mixture. That needs separate runs;
        this online rule is our adaptation that refits the weights from progress within one run.
        The data module's ``train`` source is not read by this strategy.

    Args:
        sources: ``{domain: TaskSource}``.
        window: steps of each domain's history the slope is fitted on.
        temperature: $T$ of the softmax.
        floor: $\epsilon$, the share spread uniformly.
        initial: starting weights (default uniform).
    """

    def __init__(self, sources: dict[str, TaskSource], window: int = 4, temperature: float = 0.05,
                 floor: float = 0.2, initial: dict[str, float] | None = None):
        if not isinstance(sources, dict) or not sources:
            raise RlobjInputError(f"DomainMixture.sources: expected a non-empty {{domain: TaskSource}}, got {sources!r}")
        for name, source in sources.items():
            if not isinstance(source, TaskSource):
                raise RlobjInputError(f"DomainMixture.sources[{name!r}]: expected a TaskSource, got {source!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise RlobjInputError(f"DomainMixture.window: expected an int >= 2, got {window!r}")
        if not temperature > 0:
            raise RlobjInputError(f"DomainMixture.temperature: expected a value > 0, got {temperature!r}")
        self.sources, self.window, self.temperature = dict(sources), window, float(temperature)
        self.floor = _fraction("DomainMixture.floor", floor)
        weights = dict(initial) if initial is not None else {d: 1.0 for d in sources}
        if set(weights) != set(sources) or any(not w >= 0 for w in weights.values()) or not sum(weights.values()) > 0:
            raise RlobjInputError(f"DomainMixture.initial: expected a non-negative weight for each of {sorted(sources)}, "
                                  f"got {initial!r}")
        total = sum(weights.values())
        self.weights = {d: weights[d] / total for d in sorted(sources)}
        self.cursors = {d: 0 for d in sorted(sources)}
        self.progress = {d: 0.0 for d in sorted(sources)}
        self._stats = None

    def select(self, selection: Selection) -> list[dict]:
        self._stats = selection.stats
        out = []
        for domain, slots in allocate(self.weights, selection.count).items():
            start = self.cursors[domain]
            for index in range(start, start + slots):
                record = with_prompt_id(self.sources[domain].record(index), f"{domain}:{index}")
                out.append({**record, "domain": domain})
            self.cursors[domain] = start + slots
        return out

    def observe(self, records, rewards, step) -> None:
        if self._stats is None:
            return
        for domain in self.weights:
            rates = list(self._stats.domain_step_rates(domain).items())[-self.window:]
            self.progress[domain] = _slope(rates)
        self.weights = mixture_weights(self.progress, self.temperature, self.floor)

    def metrics(self) -> dict[str, float]:
        return {f"mixture/{d}": w for d, w in self.weights.items()}

    def state_dict(self) -> dict:
        return {"weights": dict(self.weights), "cursors": dict(self.cursors), "progress": dict(self.progress)}

    def load_state_dict(self, state: dict) -> None:
        for name in ("weights", "cursors", "progress"):
            if name in state:
                if set(state[name]) != set(self.sources):
                    raise RlobjInputError(f"DomainMixture: the checkpoint's domains {sorted(state[name])} differ from "
                                          f"this run's {sorted(self.sources)}")
                setattr(self, name, {d: type(getattr(self, name)[d])(v) for d, v in state[name].items()})


@register_provider
class DifficultyKLScale(Provider):
    r"""``extras:kl_scale`` (``[batch]``): CLPO's difficulty-conditioned KL multiplier.

    As the authors' ``classify_samples_by_difficulty`` and ``kl_loss_coef_hard_scale`` (csuking/CLPO
    ``verl/trainer/ppo/ray_trainer.py``, ``scripts/clpo_qwen3_8b.sh``): a row is **hard** when its
    group's mean accuracy in this step is ``<= hard_upper`` (0.3), or when it answers a problem
    rewritten from a hard one (``DifficultyCurriculum``'s ``"<id>/simplify"`` records, the
    authors' ``rewritten_hard``); hard rows get ``hard_scale`` (0.5), the others ``other_scale``
    (1.0). Accuracy is the scorer's ``accuracy`` field when every row has it, else reward > 0
    (the authors' fallback). Read by ``kl_penalty(scale_key="kl_scale")``.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:kl_scale",)

    def __init__(self, hard_scale: float = 0.5, other_scale: float = 1.0, hard_upper: float = 0.3):
        for name, value in (("hard_scale", hard_scale), ("other_scale", other_scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise RlobjInputError(f"DifficultyKLScale.{name}: expected a number >= 0, got {value!r}")
        self.hard_scale, self.other_scale = float(hard_scale), float(other_scale)
        self.hard_upper = _fraction("DifficultyKLScale.hard_upper", hard_upper)

    def batch(self, ctx, batch, inputs):
        import torch

        from rlobj.ops.reductions import group_mean
        from rlobj.train.providers.scores import scorer_field

        given = scorer_field(batch, "accuracy")
        accuracy = (given.float() if given is not None else (batch.rewards > 0).float()).cpu()
        group = group_mean(accuracy, batch.rollout.group_ids.cpu())
        rewritten = torch.tensor([str(r.get("prompt_id", "")).endswith("/simplify") and "parent" in r
                                  for r in batch.records], dtype=torch.bool)
        hard = (group <= self.hard_upper + 1e-12) | rewritten
        scale = torch.where(hard, torch.tensor(self.hard_scale), torch.tensor(self.other_scale))
        return {"extras:kl_scale": scale.to(batch.rollout.response_ids.device)}
