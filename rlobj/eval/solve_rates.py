r"""Per-problem solve rates between two checkpoints, with support shrinkage and expansion counts.

For each problem $q$ a checkpoint drew $n$ samples of which $c$ were correct; its solve rate is
$c/n$ and the problem is in the checkpoint's *empirical support* when $c \ge c_\min$ (default
1: solved at least once, i.e. pass@n > 0). Between a ``before`` (base) and an ``after`` (RL)
checkpoint every problem falls in one of four classes:

| class | before | after |
|---|---|---|
| preserved | in support | in support |
| shrinkage | in support | out |
| expansion | out | in support |
| out of support | out | out |

Yue et al., "Does Reinforcement Learning Really Incentivize Reasoning Capacity in LLMs Beyond
the Base Model?", arXiv 2504.13837 (Sec. 3-4: problems solvable at large $k$ by base vs RL
models); Wu et al., "The Invisible Leash: Why RLVR May Not Escape Its Origin", arXiv
2507.14843 (Sec. 4: empirical support preservation / shrinkage / expansion). RLVR typically
shows more shrinkage than expansion at large $k$ while raising pass@1.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from rlobj.eval.passk import pass_at_k

__all__ = ["ProblemSolveRates", "SolveRateComparison", "compare_solve_rates", "SUPPORT_CLASSES"]

SUPPORT_CLASSES = ("preserved", "shrinkage", "expansion", "out of support")


@dataclass(frozen=True)
class ProblemSolveRates:
    """One problem's counts under both checkpoints."""

    problem: str
    n_before: int
    c_before: int
    n_after: int
    c_after: int
    min_correct: int = 1

    @property
    def rate_before(self) -> float:
        return self.c_before / self.n_before

    @property
    def rate_after(self) -> float:
        return self.c_after / self.n_after

    @property
    def support(self) -> str:
        """``preserved``, ``shrinkage``, ``expansion`` or ``out of support``."""
        before, after = self.c_before >= self.min_correct, self.c_after >= self.min_correct
        return SUPPORT_CLASSES[(0 if after else 1) if before else (2 if after else 3)]


@dataclass(frozen=True)
class SolveRateComparison:
    """Rows per problem and the summary counts; :meth:`table` formats them."""

    rows: tuple[ProblemSolveRates, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Problems per support class, plus ``improved`` / ``worse`` / ``same`` solve rate."""
        counts = {name: sum(row.support == name for row in self.rows) for name in SUPPORT_CLASSES}
        counts["improved"] = sum(row.rate_after > row.rate_before for row in self.rows)
        counts["worse"] = sum(row.rate_after < row.rate_before for row in self.rows)
        counts["same"] = sum(row.rate_after == row.rate_before for row in self.rows)
        return counts

    def pass_at_k(self, k: int, which: str) -> float:
        """Mean unbiased pass@k over problems of the ``"before"`` or ``"after"`` checkpoint."""
        if which not in ("before", "after"):
            raise ValueError(f"pass_at_k: which must be 'before' or 'after', got {which!r}")
        pairs = [(r.n_before, r.c_before) if which == "before" else (r.n_after, r.c_after) for r in self.rows]
        return sum(pass_at_k(n, c, k) for n, c in pairs) / len(pairs)

    def table(self, labels: tuple[str, str] = ("before", "after"), digits: int = 2) -> str:
        """An aligned text table (one line per problem) followed by the summary counts."""
        header = ["problem", f"{labels[0]} c/n", "rate", f"{labels[1]} c/n", "rate", "change", "support"]
        body = [[row.problem, f"{row.c_before}/{row.n_before}", f"{row.rate_before:.{digits}f}",
                 f"{row.c_after}/{row.n_after}", f"{row.rate_after:.{digits}f}",
                 f"{row.rate_after - row.rate_before:+.{digits}f}", row.support] for row in self.rows]
        widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) if i in (0, 6) else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                 for line in [header] + body]
        counts = self.counts
        lines.append("")
        lines.append(f"support: preserved {counts['preserved']}, shrinkage {counts['shrinkage']}, "
                     f"expansion {counts['expansion']}, out of support {counts['out of support']} "
                     f"(of {len(self.rows)} problems)")
        lines.append(f"solve rate: improved {counts['improved']}, worse {counts['worse']}, same {counts['same']}")
        return "\n".join(lines)


def _check_counts(name: str, problem, value) -> tuple[int, int]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"compare_solve_rates: {name}[{problem!r}] must be an (n, c) pair of ints, got {value!r}")
    n, c = value
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"compare_solve_rates: {name}[{problem!r}] needs n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    return n, c


def compare_solve_rates(before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]],
                        min_correct: int = 1) -> SolveRateComparison:
    """Compare per-problem ``(n, c)`` counts of two checkpoints on the same problems.

    Args:
        before: problem id -> (samples, correct) for the base checkpoint.
        after: the same problems for the trained checkpoint.
        min_correct: correct samples needed to count a problem as in the support (default 1).

    Example:
        >>> comparison = compare_solve_rates({"a": (4, 1), "b": (4, 0), "c": (4, 2)},
        ...                                  {"a": (4, 0), "b": (4, 3), "c": (4, 4)})
        >>> comparison.counts["shrinkage"], comparison.counts["expansion"], comparison.counts["preserved"]
        (1, 1, 1)
    """
    if set(before) != set(after):
        only_before, only_after = sorted(set(before) - set(after)), sorted(set(after) - set(before))
        raise ValueError(f"compare_solve_rates: before and after must hold the same problems; only in before: "
                         f"{only_before}, only in after: {only_after}")
    if not before:
        raise ValueError("compare_solve_rates: no problems given")
    if isinstance(min_correct, bool) or not isinstance(min_correct, int) or min_correct < 1:
        raise ValueError(f"compare_solve_rates: min_correct must be an int >= 1, got {min_correct!r}")
    rows = []
    for problem in before:
        n_before, c_before = _check_counts("before", problem, before[problem])
        n_after, c_after = _check_counts("after", problem, after[problem])
        rows.append(ProblemSolveRates(str(problem), n_before, c_before, n_after, c_after, min_correct))
    return SolveRateComparison(tuple(rows))
