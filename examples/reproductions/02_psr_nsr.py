r"""Experiment 2: positive vs negative sample reinforcement, pass@k for k = 1..64.

Claim (Zhu et al., "The Surprising Effectiveness of Negative Reinforcement in LLM
Reasoning", arXiv 2506.01347): training only on correct samples (PSR) raises pass@1 but lowers
pass@k at large k; training only on incorrect samples (NSR) keeps or raises the whole pass@k
curve; W-REINFORCE (positive samples down-weighted, lambda = 0.1) gets both.

Objectives, each the GRPO chain with its advantage term replaced (PPO clip 0.2, per-sequence
mean): ``psr()``, ``nsr()``, ``w_reinforce(lam=0.1)``, and ``grpo`` itself for reference, all
from the same warm-started tiny model per seed. After training, 64 samples per problem on 128
held-out problems give the unbiased pass@k curve; the warm-started ("base") model is evaluated
the same way.

Run: ``python examples/reproductions/02_psr_nsr.py`` (``--smoke``: 3 steps, 1 seed).
Writes ``docs/reproductions/psr_nsr/{results.md,results.json,passk.png}``.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from rlobj import group_zscore, grpo, nsr, psr, w_reinforce  # noqa: E402

NAME = "psr_nsr"
METHODS = {
    "grpo": grpo,
    "PSR": grpo.replace(group_zscore, psr()),
    "NSR": grpo.replace(group_zscore, nsr()),
    "W-REINFORCE (λ=0.1)": grpo.replace(group_zscore, w_reinforce(lam=0.1)),
}


def main() -> None:
    args = C.parse_args(__doc__)
    started = time.perf_counter()
    log = C.logger(NAME)
    folder = C.out_dir(args, NAME)
    steps = C.smoke_or(args, 3, 100)
    size, n = C.smoke_or(args, (8, 8), (128, 64))
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]
    curves = {"base (warm-started)": [], **{name: [] for name in METHODS}}
    for seed in range(args.seeds):
        warm = C.warm_start(seed, steps=C.smoke_or(args, 5, C.WARMUP_STEPS), use_cache=not args.smoke)
        records = C.eval_records(seed, size)
        base = C.new_module("grpo", seed)
        base.policy.load_state_dict(warm)
        counts = C.sample_counts(base, records, n, seed=seed * 7 + 1)
        curves["base (warm-started)"].append([(k, C.passk(counts, n, k)) for k in ks])
        for name, objective in METHODS.items():
            log(f"seed {seed}: {name}")
            module, _ = C.rl_run(objective, seed, warm, steps, log=log)
            counts = C.sample_counts(module, records, n, seed=seed * 7 + 1)
            curves[name].append([(k, C.passk(counts, n, k)) for k in ks])
    rows = {name: {f"pass@{k}": [dict(run)[k] for run in runs] for k in ks} for name, runs in curves.items()}
    table = C.markdown_table(rows, [f"pass@{k}" for k in ks])
    C.plot_curves(curves, folder / "passk.png", f"pass@k after {steps} RL steps ({size} problems, {n} samples)",
                  "k", "pass@k", logx=True)
    C.write_results(folder, table, {"rows": rows, "steps": steps, "eval_size": size, "samples": n}, started, args)


if __name__ == "__main__":
    main()
