r"""Experiment 5: support shrinkage: per-problem solve rates of the base vs the GRPO model at large k.

Claim (Yue et al., "Does Reinforcement Learning Really Incentivize Reasoning Capacity in LLMs
Beyond the Base Model?", arXiv 2504.13837; Wu et al., "The Invisible Leash", arXiv
2507.14843): RLVR raises pass@1 but its pass@k at large k falls to or below the base model's,
because it loses some problems that the base model solved at large k (support shrinkage) and
gains few new ones (expansion).

Per seed: the warm-started ("base") tiny model and the same model after ``STEPS`` GRPO steps
each sample ``N`` answers for each of 128 held-out problems; the per-problem counts go to
:func:`rlobj.eval.compare_solve_rates` (a problem is "in the support" when at least one of the
``N`` samples is correct), and both pass@k curves (k = 1..N) are plotted.

Run: ``python examples/reproductions/05_support_shrinkage.py`` (``--smoke``: 3 steps, 1 seed).
Writes ``docs/reproductions/support_shrinkage/{results.md,results.json,*.png}``.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from rlobj import grpo  # noqa: E402
from rlobj.eval import compare_solve_rates  # noqa: E402

NAME = "support_shrinkage"


def main() -> None:
    args = C.parse_args(__doc__)
    started = time.perf_counter()
    log = C.logger(NAME)
    folder = C.out_dir(args, NAME)
    steps = C.smoke_or(args, 3, 250)
    size, n = C.smoke_or(args, (8, 8), (128, 256))
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= n]
    curves = {"base (warm-started)": [], "GRPO": []}
    rows = {"base (warm-started)": {}, "GRPO": {}}
    support = {"preserved": [], "shrinkage (lost)": [], "expansion (gained)": [], "out of support": [],
               "solve rate improved": [], "solve rate worse": []}
    scatter = []
    for seed in range(args.seeds):
        warm = C.warm_start(seed, steps=C.smoke_or(args, 5, C.WARMUP_STEPS), use_cache=not args.smoke)
        records = C.eval_records(seed, size)
        base = C.new_module("grpo", seed)
        base.policy.load_state_dict(warm)
        log(f"seed {seed}: base model, {n} samples x {size} problems")
        before = C.sample_counts(base, records, n, seed=seed * 7 + 3)
        log(f"seed {seed}: GRPO, {steps} steps")
        module, _ = C.rl_run(grpo, seed, warm, steps, log=log)
        after = C.sample_counts(module, records, n, seed=seed * 7 + 3)
        comparison = compare_solve_rates({str(i): (n, c) for i, c in enumerate(before)},
                                         {str(i): (n, c) for i, c in enumerate(after)})
        counts = comparison.counts
        for key, source in (("preserved", "preserved"), ("shrinkage (lost)", "shrinkage"),
                            ("expansion (gained)", "expansion"), ("out of support", "out of support"),
                            ("solve rate improved", "improved"), ("solve rate worse", "worse")):
            support[key].append(float(counts[source]))
        for name, values in (("base (warm-started)", before), ("GRPO", after)):
            curve = [(k, C.passk(values, n, k)) for k in ks]
            curves[name].append(curve)
            for k, value in curve:
                rows[name].setdefault(f"pass@{k}", []).append(value)
        scatter.append((before, after))
    table = C.markdown_table(rows, [f"pass@{k}" for k in ks], first="model")
    support_table = C.markdown_table({f"problems (of {size})": support}, list(support), first="")
    C.plot_curves(curves, folder / "passk.png", f"pass@k, base vs GRPO ({steps} steps), {size} problems", "k",
                  "pass@k", logx=True)
    C.plot_solve_rates([([c / n for c in before], [c / n for c in after]) for before, after in scatter],
                       folder / "solve_rates.png", f"base solve rate ({n} samples)", symlog_below=1 / n)
    C.write_results(folder, table + "\n\n" + support_table,
                    {"rows": rows, "support": support, "steps": steps, "eval_size": size, "samples": n,
                     "counts": [{"before": b, "after": a} for b, a in scatter]}, started, args)


if __name__ == "__main__":
    main()
