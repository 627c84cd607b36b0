r"""Experiment 1: entropy collapse under GRPO vs low-probability / entropy regularisation.

Claim (Lp-Reg, Huang et al., arXiv 2510.03222; SIREN, arXiv 2509.25133; the 1-shot RLVR
entropy loss, Wang et al., arXiv 2504.20571): plain GRPO's token entropy falls steadily during
training; Lp-Reg keeps it stable without the instability of an indiscriminate entropy bonus.

Four objectives from the same warm-started tiny model (per seed): ``grpo``,
``grpo >> lp_reg()`` (paper defaults tau=0.02 min-p, rho=0.01, beta=1), ``grpo >> siren()``
(paper defaults p=0.8, top-20% tokens, coef 0.005) and ``grpo >> entropy_bonus(0.001)``
(1-shot RLVR's coefficient). Logged every step: the mean token entropy of the policy on its
own samples; every ``EVAL_EVERY`` steps: pass@1 and pass@16 on 128 held-out problems
(16 samples each). Lp-Reg's proxy log-probs and SIREN's vocabulary view are supplied by the
trainer's providers (``LpRegProxy``, the vocab view of the forward).

Run: ``python examples/reproductions/01_entropy_collapse.py`` (``--smoke``: 3 steps, 1 seed).
Writes ``docs/reproductions/entropy_collapse/{results.md,results.json,*.png}``.
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from rlobj import entropy_bonus, grpo, lp_reg, siren  # noqa: E402

NAME = "entropy_collapse"
METHODS = {
    "grpo": grpo,
    "grpo >> lp_reg()": grpo >> lp_reg(),
    "grpo >> siren()": grpo >> siren(),
    "grpo >> entropy_bonus(0.001)": grpo >> entropy_bonus(coef=0.001),
}


def main() -> None:
    args = C.parse_args(__doc__)
    started = time.perf_counter()
    log = C.logger(NAME)
    folder = C.out_dir(args, NAME)
    steps, every = C.smoke_or(args, (3, 3), (100, 20))
    size, n = C.smoke_or(args, (8, 4), (128, 16))
    results = C.run_methods(args, METHODS, log, steps, every, size, n)
    rows, curves = {}, {key: {} for key in ("token_entropy", "pass@1", f"pass@{n}")}
    for name, runs in results.items():
        entropy = [[(h["step"], h["token_entropy"]) for h in run if "token_entropy" in h] for run in runs]
        row = {"pass@1 start": [], "pass@1 end": [], f"pass@{n} end": [], "entropy start": [], "entropy end": [],
               "entropy min": [], "entropy max": [], "entropy steps ↑ (%)": []}
        for run, series in zip(runs, entropy):
            values = [v for _, v in series]
            head = statistics.mean(values[:5])
            tail = statistics.mean(values[-5:])
            row["pass@1 start"].append(run[0]["pass@1"])
            row["pass@1 end"].append(run[-1]["pass@1"])
            row[f"pass@{n} end"].append(run[-1][f"pass@{n}"])
            row["entropy start"].append(head)
            row["entropy end"].append(tail)
            row["entropy min"].append(min(values))
            row["entropy max"].append(max(values))
            rises = sum(b > a for a, b in zip(values, values[1:]))
            row["entropy steps ↑ (%)"].append(100.0 * rises / max(len(values) - 1, 1))
        rows[name] = row
        curves["token_entropy"][name] = entropy
        for key in ("pass@1", f"pass@{n}"):
            curves[key][name] = [[(h["step"], h[key]) for h in run if key in h] for run in runs]
    columns = list(next(iter(rows.values())))
    table = C.markdown_table(rows, columns)
    C.plot_curves(curves["token_entropy"], folder / "entropy.png", "token entropy during RL (mean ± std over seeds)",
                  "RL step", "mean token entropy (nats)")
    C.plot_curves(curves["pass@1"], folder / "pass1.png", "pass@1 on held-out problems", "RL step", "pass@1")
    C.plot_curves(curves[f"pass@{n}"], folder / f"pass{n}.png", f"pass@{n} on held-out problems", "RL step",
                  f"pass@{n}")
    C.write_results(folder, table, {"rows": rows, "steps": steps, "eval_size": size, "samples": n}, started, args)


if __name__ == "__main__":
    main()
