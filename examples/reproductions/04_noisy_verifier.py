r"""Experiment 4: noisy verifiers: uncorrected vs backward vs forward correction.

Claim (Cai et al., "Noisy verifiers: policy gradient with backward / forward correction",
arXiv 2510.00915): when the reward flips with known false-positive rate $\rho_0$ and
false-negative rate $\rho_1$, the corrections recover most of the clean-reward learning curve,
and the forward correction converges faster than the backward one.

The exact-match verifier is wrapped in :class:`NoisyVerifier`: a correct answer is scored 0 with
probability $\rho_1 = 0.2$ and a wrong one 1 with probability $\rho_0 = 0.1$ (the paper's
synthetic setting, App. E.3). From the same warm-started tiny model per seed, the RLOO chain
``base = grpo.replace(group_zscore, leave_one_out())`` (leave-one-out baseline, the paper's
recommendation for the backward correction; PPO clip 0.2, per-sequence mean) is trained

* on clean rewards (the target curve),
* on noisy rewards, uncorrected,
* on noisy rewards with ``backward_correction(rho0=0.1, rho1=0.2) >> base``,
* on noisy rewards with ``grpo.replace(group_zscore, forward_correction(rho1=0.2))``.

Evaluation (every ``EVAL_EVERY`` steps, 128 held-out problems x 16 samples) always uses the
clean verifier.

Run: ``python examples/reproductions/04_noisy_verifier.py`` (``--smoke``: 3 steps, 1 seed).
Writes ``docs/reproductions/noisy_verifier/{results.md,results.json,*.png}``.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from claims import NoisyVerifier  # noqa: E402  (the same flips as the trace testbed's)

from rlobj import backward_correction, forward_correction, group_zscore, grpo, leave_one_out  # noqa: E402
from rlobj.data.tasks import ExactAnswer  # noqa: E402

NAME = "noisy_verifier"
RHO0, RHO1 = 0.1, 0.2


BASE = grpo.replace(group_zscore, leave_one_out())
METHODS = {
    "clean reward": (BASE, False),
    "noisy, uncorrected": (BASE, True),
    "noisy + backward_correction": (backward_correction(rho0=RHO0, rho1=RHO1) >> BASE, True),
    "noisy + forward_correction": (grpo.replace(group_zscore, forward_correction(rho1=RHO1)), True),
}


def main() -> None:
    args = C.parse_args(__doc__)
    started = time.perf_counter()
    log = C.logger(NAME)
    folder = C.out_dir(args, NAME)
    steps, every = C.smoke_or(args, (3, 3), (100, 20))
    size, n = C.smoke_or(args, (8, 4), (128, 16))
    def configure(value, seed):
        objective, noisy = value
        return objective, {"verifier": NoisyVerifier(RHO0, RHO1, seed=seed, clean=ExactAnswer()) if noisy else ExactAnswer()}

    results = C.run_methods(args, METHODS, log, steps, every, size, n, configure=configure)
    rows, curves = {}, {"pass@1": {}, f"pass@{n}": {}}
    for name, runs in results.items():
        evals = [[h for h in run if "pass@1" in h] for run in runs]
        rows[name] = {
            "pass@1 start": [e[0]["pass@1"] for e in evals],
            "pass@1 end": [e[-1]["pass@1"] for e in evals],
            "pass@1 gain": [e[-1]["pass@1"] - e[0]["pass@1"] for e in evals],
            "pass@1 mean over evals (AUC)": [sum(h["pass@1"] for h in e) / len(e) for e in evals],
            f"pass@{n} end": [e[-1][f"pass@{n}"] for e in evals],
        }
        for key in curves:
            curves[key][name] = [[(h["step"], h[key]) for h in e] for e in evals]
    clean, noisy = rows["clean reward"]["pass@1 gain"], rows["noisy, uncorrected"]["pass@1 gain"]
    table = C.markdown_table(rows, list(next(iter(rows.values()))))
    C.plot_curves(curves["pass@1"], folder / "pass1.png", f"pass@1 (clean verifier), ρ0={RHO0}, ρ1={RHO1}",
                  "RL step", "pass@1")
    C.plot_curves(curves[f"pass@{n}"], folder / f"pass{n}.png", f"pass@{n} (clean verifier)", "RL step", f"pass@{n}")
    C.write_results(folder, table, {"rows": rows, "steps": steps, "eval_size": size, "samples": n,
                                    "noisy_gain_minus_clean": [a - b for a, b in zip(noisy, clean)]}, started, args)


if __name__ == "__main__":
    main()
