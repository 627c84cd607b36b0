r"""pass@k between two checkpoints, per-problem solve rates, and support shrinkage / expansion.

Two synthetic "checkpoints" answer the same 40 problems, 64 samples each. The base model
solves problem $q$ with probability $p_q = \sigma(s - d_q)$ for a difficulty $d_q$; the
"RL" checkpoint sharpens what the base already does well ($p_q^{0.35}$ where $p_q > 0.06$)
and loses the rarest successes (problems the base solves with probability $\le 0.06$ drop to
0, except two it newly learns). That is the pattern Yue et al. (arXiv 2504.13837) and "The
Invisible Leash" (arXiv 2507.14843) report for RLVR: a higher pass@1 and a lower pass@k at
large $k$, because the empirical support shrinks more than it expands.

The script prints the unbiased pass@k of both checkpoints for $k = 1, 2, 4, \dots, 64$
(``rlobj.eval.pass_at_k_curve``), the per-problem solve-rate table with the support class of
each problem and the counts (``rlobj.eval.compare_solve_rates``), and writes the pass@k-vs-k
plot (``rlobj.eval.plot_pass_at_k``). No model and no download: the counts are drawn from the
probabilities above with a fixed seed.

Run: ``python examples/passk_between_checkpoints.py`` (plot:
``artifacts/plots/passk_between_checkpoints.png``; ``--docs`` also writes the copy shown below).

![pass@k versus k for the base and RL checkpoints](../assets/examples/passk_between_checkpoints.png)
"""

import sys
from pathlib import Path

import torch

from rlobj.eval import compare_solve_rates, format_table, pass_at_k_curve, plot_pass_at_k

PROBLEMS, SAMPLES, SKILL = 40, 64, -1.5
KS = [1, 2, 4, 8, 16, 32, 64]


def checkpoints(generator: torch.Generator) -> tuple[dict, dict]:
    """``(before, after)``: problem id -> (samples, correct) for the base and the RL checkpoint."""
    difficulty = torch.randn(PROBLEMS, generator=generator) * 3.0
    base = torch.sigmoid(SKILL - difficulty)
    rl = torch.where(base > 0.06, base.pow(0.35), torch.zeros_like(base))
    rare = torch.nonzero(base <= 0.06).flatten()
    rl[rare[:2]] = 0.05  # two problems the RL checkpoint newly solves
    before, after = {}, {}
    for q in range(PROBLEMS):
        name = f"q{q:02d}"
        before[name] = (SAMPLES, int((torch.rand(SAMPLES, generator=generator) < base[q]).sum()))
        after[name] = (SAMPLES, int((torch.rand(SAMPLES, generator=generator) < rl[q]).sum()))
    return before, after


def save_plot(curves: dict, name: str) -> None:
    targets = [Path("artifacts/plots")] + ([Path("docs/assets/examples")] if "--docs" in sys.argv else [])
    for folder in targets:
        path = plot_pass_at_k(curves, folder / f"{name}.png", title="pass@k: base vs RL checkpoint (synthetic)")
        print(f"plot written to {path.as_posix()}")


def main() -> None:
    before, after = checkpoints(torch.Generator().manual_seed(0))
    curves = {"base": pass_at_k_curve(list(before.values()), KS), "RL": pass_at_k_curve(list(after.values()), KS)}
    print(f"{PROBLEMS} problems, {SAMPLES} samples each; unbiased pass@k (Chen et al., arXiv 2107.03374)\n")
    print(format_table([(label, {f"pass@{k}": v for k, v in curve.items()}) for label, curve in curves.items()]))

    comparison = compare_solve_rates(before, after)
    changed = [row for row in comparison.rows if row.support in ("shrinkage", "expansion")]
    shown = {row.problem for row in changed + list(comparison.rows[:6])}
    print("\nper-problem solve rates (the first six problems and every problem that left or entered the support):\n")
    subset = type(comparison)(tuple(row for row in comparison.rows if row.problem in shown))
    print("\n".join(subset.table(labels=("base", "RL")).splitlines()[: len(shown) + 1]))
    print("\nall problems:")
    print("\n".join(comparison.table().splitlines()[-2:]))
    crossing = next((k for k in KS if curves["RL"][k] < curves["base"][k]), None)
    print(f"\nRL is ahead at pass@1 by {curves['RL'][1] - curves['base'][1]:+.3f}; "
          + (f"the base model overtakes it from k = {crossing}" if crossing else "the curves do not cross"))
    save_plot(curves, "passk_between_checkpoints")


if __name__ == "__main__":
    main()
