r"""Per-prompt statistics: what the data loops know about every prompt the policy has tried.

:class:`PromptStats` holds, per prompt id, the attempts, the successes (reward at or above a
threshold), the reward sum, the last ``window`` rewards, the step it was last seen, its domain and
the (step, hint fraction, successes, attempts) cells a difficulty fit reads. It is updated from
every scored batch (:meth:`PromptStats.observe_batch`), synchronised across data-parallel ranks
(every rank applies the updates of all ranks in rank order, so all ranks hold the same statistics
and pick the same next prompts), and saved in checkpoints as plain data
(:meth:`PromptStats.state_dict`).

:meth:`PromptStats.rasch_fit` fits a one-parameter item-response (Rasch) model with a hint
covariate,

$$ \Pr[\text{success}_{j,k,h}] = \sigma(\theta_k - b_j + \alpha h), $$

ability $\theta_k$ per block of ``ability_window`` steps ($\theta$ of the first block fixed at 0),
difficulty $b_j$ per item (prompt or domain) and hint slope $\alpha$, by maximum a posteriori
estimation with Gaussian priors (``prior_std``; None = maximum likelihood).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from rlobj.ops.errors import RlobjInputError

__all__ = ["PromptStats", "RaschFit", "gather_updates"]


def gather_updates(updates: list) -> list:
    """The updates of every data-parallel rank, in rank order (``updates`` itself on one process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(updates)
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, list(updates))
    return [u for part in parts for u in part]


@dataclass(frozen=True)
class RaschFit:
    """A fitted Rasch model: ``abilities[k]`` per step block, ``difficulty[item]``, ``hint_slope``.

    ``ability`` is the latest block's ability (the one predictions for the next step use).
    """

    abilities: dict[int, float]
    difficulty: dict[str, float]
    hint_slope: float
    ability_window: int | None = None

    @property
    def ability(self) -> float:
        return self.abilities[max(self.abilities)] if self.abilities else 0.0

    def success_probability(self, item: str, hint: float = 0.0, default_difficulty: float = 0.0) -> float:
        r"""$\sigma(\theta - b_j + \alpha h)$ at the latest ability (unknown items: ``default_difficulty``)."""
        b = self.difficulty.get(item, default_difficulty)
        return 1.0 / (1.0 + math.exp(-(self.ability - b + self.hint_slope * hint)))


@dataclass
class _Entry:
    attempts: int = 0
    successes: int = 0
    reward_sum: float = 0.0
    recent: list[float] = field(default_factory=list)
    first_step: int = -1
    last_step: int = -1
    domain: str = "default"
    cells: list[list[float]] = field(default_factory=list)  # [step, hint, successes, attempts]


class PromptStats:
    r"""Statistics of every prompt tried so far, keyed by ``record["prompt_id"]``.

    Args:
        window: number of recent rewards kept per prompt (``recent_rate`` reads them).
        threshold: a reward ``>= threshold`` counts as a success.

    Example:
        >>> stats = PromptStats(window=3)
        >>> stats.apply([("p0", "arith", 0.0, [1.0, 0.0, 1.0, 1.0], 0)])
        >>> stats.solve_rate("p0"), stats.recent_rate("p0"), stats.attempts("p0")
        (0.75, 0.6666666666666666, 4)
    """

    def __init__(self, window: int = 16, threshold: float = 1.0):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise RlobjInputError(f"PromptStats.window: expected an int >= 1, got {window!r}")
        self.window, self.threshold = window, float(threshold)
        self.entries: dict[str, _Entry] = {}
        self.version = 0
        self._fits: dict[tuple, RaschFit] = {}

    # ------------------------------------------------------------------ updates
    def batch_updates(self, records: list[dict], rewards: list[float], step: int) -> list[tuple]:
        """This rank's updates from one scored batch: ``(prompt_id, domain, hint, rewards, step)`` per
        prompt, rows in batch order (rows without a ``prompt_id`` are not counted)."""
        grouped: dict[str, tuple] = {}
        for record, reward in zip(records, rewards, strict=True):
            pid = record.get("prompt_id") if isinstance(record, dict) else None
            if pid is None:
                continue
            if not math.isfinite(float(reward)):
                raise RlobjInputError(f"PromptStats: reward {reward!r} of prompt {pid!r} is not finite")
            key = str(pid)
            if key not in grouped:
                grouped[key] = (key, str(record.get("domain", "default")), float(record.get("hint_fraction", 0.0)),
                                [], int(step))
            grouped[key][3].append(float(reward))
        return list(grouped.values())

    def apply(self, updates: list[tuple]) -> None:
        """Apply ``(prompt_id, domain, hint, rewards, step)`` updates in order."""
        for pid, domain, hint, rewards, step in updates:
            entry = self.entries.setdefault(str(pid), _Entry())
            wins = sum(r >= self.threshold for r in rewards)
            entry.attempts += len(rewards)
            entry.successes += int(wins)
            entry.reward_sum += float(sum(rewards))
            entry.recent = (entry.recent + [float(r) for r in rewards])[-self.window:]
            if entry.first_step < 0:
                entry.first_step = int(step)
            entry.last_step = max(entry.last_step, int(step))
            entry.domain = str(domain)
            cell = next((c for c in entry.cells if c[0] == step and c[1] == hint), None)
            if cell is None:
                entry.cells.append([int(step), float(hint), int(wins), len(rewards)])
            else:
                cell[2] += int(wins)
                cell[3] += len(rewards)
        if updates:
            self.version += 1
            self._fits.clear()

    def observe_batch(self, records: list[dict], rewards: list[float], step: int) -> int:
        """Update from this rank's scored rows, gathered from every rank; returns the prompts updated."""
        updates = gather_updates(self.batch_updates(records, rewards, step))
        self.apply(updates)
        return len(updates)

    # ------------------------------------------------------------------ reads
    def __contains__(self, pid: str) -> bool:
        return str(pid) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def attempts(self, pid: str) -> int:
        entry = self.entries.get(str(pid))
        return 0 if entry is None else entry.attempts

    def solve_rate(self, pid: str) -> float | None:
        """Successes / attempts over the whole run (None for an unseen prompt)."""
        entry = self.entries.get(str(pid))
        return None if entry is None or not entry.attempts else entry.successes / entry.attempts

    def recent_rate(self, pid: str) -> float | None:
        """Fraction of the last ``window`` rewards that are successes (None for an unseen prompt)."""
        entry = self.entries.get(str(pid))
        if entry is None or not entry.recent:
            return None
        return sum(r >= self.threshold for r in entry.recent) / len(entry.recent)

    def mean_reward(self, pid: str) -> float | None:
        entry = self.entries.get(str(pid))
        return None if entry is None or not entry.attempts else entry.reward_sum / entry.attempts

    def last_step(self, pid: str) -> int:
        entry = self.entries.get(str(pid))
        return -1 if entry is None else entry.last_step

    def domain_step_rates(self, domain: str) -> dict[int, float]:
        """Success rate of ``domain`` at each step it was tried (all hint levels pooled)."""
        totals: dict[int, list[int]] = {}
        for entry in self.entries.values():
            if entry.domain != domain:
                continue
            for step, _, wins, tries in entry.cells:
                acc = totals.setdefault(int(step), [0, 0])
                acc[0] += int(wins)
                acc[1] += int(tries)
        return {s: w / n for s, (w, n) in sorted(totals.items()) if n}

    # ------------------------------------------------------------------ difficulty fit
    def rasch_fit(self, item: str = "prompt", ability_window: int | None = None, prior_std: float | None = 2.0,
                  hint_prior: tuple[float, float] = (4.0, 2.0), iterations: int = 100) -> RaschFit:
        r"""MAP fit of $\Pr[\text{success}] = \sigma(\theta_k - b_j + \alpha h)$ over every cell observed.

        Args:
            item: ``"prompt"`` (one difficulty per prompt) or ``"domain"`` (one per domain).
            ability_window: steps per ability block $k = \lfloor \text{step} / w \rfloor$ (None:
                one ability for the whole run). The first block's ability is fixed at 0.
            prior_std: std of the zero-mean Gaussian priors of $\theta$ and $b$ (None: maximum
                likelihood; items solved always or never then run to large values).
            hint_prior: (mean, std) of the Gaussian prior of $\alpha$ (only identified when hints
                vary; std None-like large values give a flat prior).
            iterations: L-BFGS iterations (float64, deterministic).
        """
        if item not in ("prompt", "domain"):
            raise RlobjInputError(f"rasch_fit.item: expected 'prompt' or 'domain', got {item!r}")
        if ability_window is not None and (not isinstance(ability_window, int) or ability_window < 1):
            raise RlobjInputError(f"rasch_fit.ability_window: expected an int >= 1 or None, got {ability_window!r}")
        key = (item, ability_window, prior_std, tuple(hint_prior), iterations, self.version)
        if key in self._fits:
            return self._fits[key]
        rows = []
        for pid in sorted(self.entries):
            entry = self.entries[pid]
            name = pid if item == "prompt" else entry.domain
            for step, hint, wins, tries in entry.cells:
                block = 0 if ability_window is None else int(step) // ability_window
                rows.append((name, block, float(hint), float(wins), float(tries)))
        items = sorted({r[0] for r in rows})
        blocks = sorted({r[1] for r in rows})
        if not rows:
            return RaschFit({}, {}, float(hint_prior[0]), ability_window)
        item_index = torch.tensor([items.index(r[0]) for r in rows])
        block_index = torch.tensor([blocks.index(r[1]) for r in rows])
        hints, wins, tries = (torch.tensor([r[i] for r in rows], dtype=torch.float64) for i in (2, 3, 4))
        theta = torch.zeros(len(blocks) - 1, dtype=torch.float64, requires_grad=True)
        difficulty = torch.zeros(len(items), dtype=torch.float64, requires_grad=True)
        slope = torch.tensor(float(hint_prior[0]), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([theta, difficulty, slope], max_iter=iterations, tolerance_grad=1e-10,
                                      tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def objective():
            optimizer.zero_grad()
            abilities = torch.cat([torch.zeros(1, dtype=torch.float64), theta])
            logits = abilities[block_index] - difficulty[item_index] + slope * hints
            nll = -(wins * torch.nn.functional.logsigmoid(logits)
                    + (tries - wins) * torch.nn.functional.logsigmoid(-logits)).sum()
            if prior_std is not None:
                nll = nll + (theta.square().sum() + difficulty.square().sum()) / (2 * prior_std**2)
            nll = nll + (slope - hint_prior[0]).square() / (2 * hint_prior[1] ** 2)
            nll.backward()
            return nll

        optimizer.step(objective)
        abilities = [0.0] + theta.detach().tolist()
        fit = RaschFit({b: abilities[i] for i, b in enumerate(blocks)},
                       {name: float(v) for name, v in zip(items, difficulty.detach().tolist())},
                       float(slope.detach()), ability_window)
        self._fits[key] = fit
        return fit

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain data (str, int, float, lists): loads with ``torch.load(weights_only=True)``."""
        return {"window": self.window, "threshold": self.threshold, "version": self.version,
                "entries": {pid: {"attempts": e.attempts, "successes": e.successes, "reward_sum": e.reward_sum,
                                  "recent": list(e.recent), "first_step": e.first_step, "last_step": e.last_step,
                                  "domain": e.domain, "cells": [list(c) for c in e.cells]}
                            for pid, e in self.entries.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("window", self.window) != self.window:
            raise RlobjInputError(f"PromptStats: the checkpoint's window {state['window']} differs from this run's "
                                  f"{self.window}")
        self.version = int(state.get("version", 0))
        self.entries = {pid: _Entry(attempts=int(e["attempts"]), successes=int(e["successes"]),
                                    reward_sum=float(e["reward_sum"]), recent=[float(r) for r in e["recent"]],
                                    first_step=int(e["first_step"]), last_step=int(e["last_step"]),
                                    domain=str(e["domain"]), cells=[list(c) for c in e["cells"]])
                        for pid, e in state.get("entries", {}).items()}
        self._fits.clear()
