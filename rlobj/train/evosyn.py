r"""EvoSyn: an evolved filtering strategy picks reliable (problem, tests, solution) instances.

After Du et al., "EvoSyn: Generalizable Evolutionary Data Synthesis for Verifiable Learning"
(arXiv:2510.17928), following the authors' code (``kinza99/openevolve@0bff2b6345ac9bde44f7e68bba1ead485b4d897b``,
``livecode/init_program.py``, ``livecode/evaluator.py``) where it is more specific than the paper.

For each problem there are candidate solutions (programs defining ``f``) and candidate
**testings** (each a list of ``{"input", "output"}`` cases). Every solution runs against every
testing in rlobj's sandbox (:func:`pass_matrix`; a solution passes a testing when it passes all
its cases). A **strategy** ranks solutions and testings from that pass matrix;
:class:`RankingStrategy` is a family of them whose first member (``iterations=1``) is the
authors' initial strategy (solutions by the number of testings they pass, testings by the
number of solutions they accept).

* **Fitness** (:func:`consistency_fitness`, the authors' ``final_check_problem``): on seed
  problems that also have human tests, a problem counts when the top-ranked solution passes the
  human tests and the top-ranked testing gives the same verdicts as the human tests on the
  ``top_s`` best-ranked and on the ``top_s`` worst-ranked solutions; fitness = the share of seed
  problems that count.
* **Evolution** (:func:`evolve`): islands of strategies, each member makes a mutated child per
  generation, the best ``size`` of parents and children survive, the best of each island
  migrates to the next every ``migrate_every`` generations. The authors evolve the strategy's
  *code* with an LLM inside OpenEvolve (MAP-Elites over islands); rlobj evolves the parameters
  of :class:`RankingStrategy` (``mutate`` is a hook: a code-writing mutator plugs in there), and
  keeps no MAP-Elites feature grid.
* **Synthesis** (:func:`synthesize`, :class:`EvoSynTasks`): on new problems, the evolved strategy
  picks the best solution and the best testing; the instance is kept when that solution passes
  that testing (the authors' ``generation_final_check_problem``), deduplicated by prompt, with
  its provenance (source index, chosen solution and testing, strategy, its fitness).
  :class:`PassesTests` is the RL verifier of the kept instances.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError
from rlobj.train.code_tasks import CodeRunner, arguments, fenced_blocks, parse_program, same_value
from rlobj.train.synthesis import normalize_prompt

__all__ = ["RankingStrategy", "pass_matrix", "consistency_fitness", "evolve", "synthesize", "EvoSynTasks",
           "PassesTests"]


def _cases(testing: Any, where: str) -> list[dict]:
    if not isinstance(testing, list) or not testing or not all(
            isinstance(c, dict) and arguments(c.get("input", ""))[0] and isinstance(c.get("output"), str)
            for c in testing):
        raise RlobjInputError(f"{where}: a testing must be a non-empty list of {{'input': argument literals, "
                              f"'output': literal text}}, got {testing!r:.120}")
    return testing


def run_cases(program: str, cases: list[dict], runner: CodeRunner) -> list[bool]:
    """Whether ``f`` of ``program`` gives each case's output (one sandboxed run; static checks first)."""
    if parse_program(program)[0] != "ok":
        return [False] * len(cases)
    status, outputs = runner.run(program, [c["input"] for c in cases])
    if status != "ok":
        return [False] * len(cases)
    return [o is not None and same_value(o[0], c["output"]) for o, c in zip(outputs, cases, strict=True)]


def pass_matrix(solutions: list[str], testings: list[list[dict]], runner: CodeRunner) -> list[list[bool]]:
    """``[solution][testing]``: the solution passes every case of the testing (one sandboxed run per solution)."""
    flat = [c for t in testings for c in t]
    out = []
    for program in solutions:
        results, at = run_cases(program, flat, runner), 0
        row = []
        for testing in testings:
            row.append(all(results[at:at + len(testing)]))
            at += len(testing)
        out.append(row)
    return out


@dataclass(frozen=True)
class RankingStrategy:
    r"""Mutual-reinforcement ranking of solutions and testings from a pass matrix $P$.

    With $u^{(0)} = v^{(0)} = 1$, for $k = 1..K$ (``iterations``):
    $u^{(k)}_s = \sum_t P_{st} v^{(k-1)}_t$ and
    $v^{(k)}_t = \sum_s P_{st} u^{(k-1)}_s - \rho \sum_s P_{st} (\max u^{(k-1)} - u^{(k-1)}_s)$
    (a testing loses credit for accepting weak solutions; $\rho$ = ``rejection``), each vector
    divided by its largest magnitude. Solutions and testings are ranked by $u^{(K)}$ and $v^{(K)}$,
    best first, ties by index. ``iterations=1`` is the authors' initial strategy (counts).

    Example:
        >>> RankingStrategy().rank([[True, True], [True, False], [False, False]])
        ([0, 1, 2], [0, 1])
    """

    iterations: int = 1
    rejection: float = 0.0

    def __post_init__(self):
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or not 1 <= self.iterations <= 10:
            raise RlobjInputError(f"RankingStrategy.iterations: expected an int in [1, 10], got {self.iterations!r}")
        if isinstance(self.rejection, bool) or not isinstance(self.rejection, (int, float)) \
                or not math.isfinite(self.rejection) or self.rejection < 0:
            raise RlobjInputError(f"RankingStrategy.rejection: expected a number >= 0, got {self.rejection!r}")

    def scores(self, matrix: list[list[bool]]) -> tuple[list[float], list[float]]:
        """$(u^{(K)}, v^{(K)})$."""
        rows, cols = len(matrix), len(matrix[0]) if matrix else 0
        u, v = [1.0] * rows, [1.0] * cols
        for _ in range(self.iterations):
            top = max(u) if u else 0.0
            new_u = [sum(v[t] for t in range(cols) if matrix[s][t]) for s in range(rows)]
            new_v = [sum(u[s] - self.rejection * (top - u[s]) for s in range(rows) if matrix[s][t])
                     for t in range(cols)]
            u, v = _scaled(new_u), _scaled(new_v)
        return u, v

    def rank(self, matrix: list[list[bool]]) -> tuple[list[int], list[int]]:
        """Solution indices and testing indices, best first."""
        u, v = self.scores(matrix)
        return sorted(range(len(u)), key=lambda s: (-u[s], s)), sorted(range(len(v)), key=lambda t: (-v[t], t))


def _scaled(values: list[float]) -> list[float]:
    peak = max((abs(x) for x in values), default=0.0)
    return [x / peak for x in values] if peak > 0 else list(values)


def consistency_fitness(strategy: RankingStrategy, seeds: list[dict], top_s: int = 8) -> float:
    """Share of seed problems on which ``strategy`` agrees with the human tests (module docstring).

    Each seed is ``{"matrix": pass matrix, "truth": [solution passes the human tests]}``.
    """
    if not seeds:
        raise RlobjInputError("consistency_fitness: no seed problems")
    good = 0
    for seed in seeds:
        matrix, truth = seed["matrix"], [bool(x) for x in seed["truth"]]
        solutions, testings = strategy.rank(matrix)
        top, bottom, best = solutions[:top_s], solutions[-top_s:], testings[0]
        good += int(truth[top[0]] and [matrix[s][best] for s in top] == [truth[s] for s in top]
                    and [matrix[s][best] for s in bottom] == [truth[s] for s in bottom])
    return good / len(seeds)


def mutate_strategy(strategy: RankingStrategy, rng: random.Random) -> RankingStrategy:
    """A child: ``iterations`` one up or down (half the time, kept in [1, 5]), ``rejection`` plus N(0, 1), at least 0."""
    iterations = strategy.iterations
    if rng.random() < 0.5:
        iterations = min(5, max(1, iterations + rng.choice((-1, 1))))
    return RankingStrategy(iterations, max(0.0, strategy.rejection + rng.gauss(0.0, 1.0)))


def evolve(seeds: list[dict], start: RankingStrategy | None = None, generations: int = 10, islands: int = 2,
           size: int = 4, migrate_every: int = 3, top_s: int = 8, seed: int = 0,
           mutate=mutate_strategy) -> tuple[RankingStrategy, float, list[float]]:
    """Island evolution of strategies by :func:`consistency_fitness`; ``(best, its fitness, best fitness per
    generation)``. Elitist: the best fitness never decreases."""
    rng, start = random.Random(seed), start or RankingStrategy()

    def fit(s):
        return consistency_fitness(s, seeds, top_s)

    pool = [[(fit(start), 0, start)] + [(fit(c), 0, c) for c in (mutate(start, rng) for _ in range(size - 1))]
            for _ in range(islands)]
    history, born = [], 1
    for generation in range(generations):
        for i, island in enumerate(pool):
            children = [(fit(c), born + j, c) for j, c in enumerate(mutate(p, rng) for _, _, p in island)]
            born += len(children)
            pool[i] = sorted(island + children, key=lambda x: (-x[0], x[1]))[:size]
        if migrate_every and (generation + 1) % migrate_every == 0 and islands > 1:
            bests = [island[0] for island in pool]
            for i in range(islands):
                pool[(i + 1) % islands] = sorted(pool[(i + 1) % islands][:-1] + [bests[i]], key=lambda x: (-x[0], x[1]))
        history.append(max(island[0][0] for island in pool))
    best = min((island[0] for island in pool), key=lambda x: (-x[0], x[1]))
    return best[2], best[0], history


def synthesize(candidates: list[dict], strategy: RankingStrategy, runner: CodeRunner,
               fitness: float | None = None) -> tuple[list[dict], Counter]:
    """Kept instances (module docstring) and the count of each outcome (``kept``, ``no_passing_pair``,
    ``duplicate``, ``invalid``). A candidate is ``{"prompt", "solutions": [programs], "testings":
    [[cases]]}``; a kept record is ``{"prompt", "tests", "answer", "completion", "provenance"}``."""
    kept, counts, seen = [], Counter(), set()
    for index, item in enumerate(candidates):
        try:
            prompt, solutions = str(item["prompt"]), [str(s) for s in item["solutions"]]
            testings = [_cases(t, f"EvoSyn candidate {index}") for t in item["testings"]]
        except (KeyError, TypeError, RlobjInputError):
            counts["invalid"] += 1
            continue
        if not solutions or not testings or not prompt.strip():
            counts["invalid"] += 1
            continue
        key = normalize_prompt(prompt)
        if key in seen:
            counts["duplicate"] += 1
            continue
        matrix = pass_matrix(solutions, testings, runner)
        order_s, order_t = strategy.rank(matrix)
        best_s, best_t = order_s[0], order_t[0]
        if not matrix[best_s][best_t]:
            counts["no_passing_pair"] += 1
            continue
        seen.add(key)
        counts["kept"] += 1
        kept.append({"prompt": prompt, "tests": testings[best_t], "answer": solutions[best_s],
                     "completion": solutions[best_s],
                     "provenance": {"source": index, "solution": best_s, "testing": best_t,
                                    "strategy": asdict(strategy), "fitness": fitness}})
    return kept, counts


def seed_matrices(seeds: list[dict], runner: CodeRunner) -> list[dict]:
    """Pass matrices of seed problems: ``{"solutions", "testings", "human_tests"}`` -> ``{"matrix", "truth"}``."""
    out = []
    for index, item in enumerate(seeds):
        human = _cases(item.get("human_tests"), f"EvoSyn seed {index} human_tests")
        testings = [_cases(t, f"EvoSyn seed {index}") for t in item["testings"]]
        out.append({"matrix": pass_matrix(item["solutions"], testings, runner),
                    "truth": [all(run_cases(s, human, runner)) for s in item["solutions"]]})
    return out


class EvoSynTasks(TaskSource):
    """The kept instances of :func:`synthesize` as a task source (record ``i`` = kept ``i mod n``).

    Args:
        candidates: candidate problems (list of dicts, or a JSONL path).
        seeds: seed problems with ``human_tests`` for the evolution; without seeds, ``strategy`` is used as given.
        strategy: the starting (or fixed) :class:`RankingStrategy` as a dict of its fields.
        generations, islands, size, top_s, seed: settings of :func:`evolve`.
        wall_seconds, allow_missing: sandbox settings (:class:`~rlobj.train.code_tasks.CodeRunner`).

    Attributes: ``strategy``, ``fitness``, ``history``, ``counts``, ``kept`` (the records).
    """

    def __init__(self, candidates: Any, seeds: Any = None, strategy: dict | None = None, generations: int = 10,
                 islands: int = 2, size: int = 4, top_s: int = 8, seed: int = 0, wall_seconds: float = 5.0,
                 allow_missing: Any = "auto"):
        runner = CodeRunner(wall_seconds=wall_seconds, allow_missing=allow_missing)
        start = RankingStrategy(**(strategy or {}))
        self.fitness, self.history = None, []
        if seeds:
            matrices = seed_matrices(_load(seeds, "seeds"), runner)
            start, self.fitness, self.history = evolve(matrices, start, generations, islands, size, top_s=top_s,
                                                       seed=seed)
        self.strategy = start
        self.kept, self.counts = synthesize(_load(candidates, "candidates"), start, runner, self.fitness)
        if not self.kept:
            raise RlobjInputError(f"EvoSynTasks: no candidate was kept ({dict(self.counts)})")

    def record(self, index: int) -> dict[str, Any]:
        return dict(self.kept[int(index) % len(self.kept)])


def _load(value: Any, name: str) -> list[dict]:
    if isinstance(value, str):
        import json
        from pathlib import Path

        path = Path(value)
        if not path.is_file():
            raise RlobjInputError(f"EvoSynTasks.{name}: no such file {value!r}")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not isinstance(value, list):
        raise RlobjInputError(f"EvoSynTasks.{name}: expected a list of dicts or a JSONL path, got {value!r:.80}")
    return value


@dataclass(frozen=True)
class PassesTests:
    """Verifier: 1.0 when the completion's program (a ```` ```python ```` block, else the whole
    text) passes every case of ``sample["tests"]`` in the sandbox, else 0.0."""

    wall_seconds: float = 5.0
    allow_missing: Any = "auto"

    def __call__(self, completion: str, sample) -> float:
        program = (fenced_blocks(completion, "python") or [str(completion)])[0]
        runner = CodeRunner(wall_seconds=self.wall_seconds, allow_missing=self.allow_missing)
        return float(all(run_cases(program, _cases(sample.get("tests"), "PassesTests"), runner)))
