r"""Experiment 3: forking tokens: policy gradient on the top-20% entropy tokens vs all vs bottom-80%.

Claim (Wang et al., "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective
Reinforcement Learning for LLM Reasoning", arXiv 2506.01939): restricting the policy gradient
to the 20% highest-entropy ("forking") tokens matches (or beats) training on all tokens, while
training on the 80% lowest-entropy tokens is clearly worse.

Objectives from the same warm-started tiny model per seed: ``grpo`` (all tokens),
``grpo >> top_entropy_mask(rho=0.2, scope="micro_batch")`` (the reference: top 20% of the
micro-batch's tokens, loss averaged over the selected tokens) and
``grpo >> bottom_entropy_mask(rho=0.2)``, defined below as the exact complement (the other 80%
of each micro-batch, same normalisation). Both follow the paper's reference code, which selects
and normalises per micro-batch (``scope="micro_batch"``), not rlobj's default, one selection per
optimizer mini-batch: the gradient then depends on the micro-batch size (and the number of
data-parallel ranks), which breaks the micro-batch law on purpose. Every ``EVAL_EVERY`` steps:
pass@1 and pass@16 on 128 held-out problems.

Run: ``python examples/reproductions/03_forking_tokens.py`` (``--smoke``: 3 steps, 1 seed).
Writes ``docs/reproductions/forking_tokens/{results.md,results.json,*.png}``.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from claims import bottom_entropy_mask  # noqa: E402

from rlobj import grpo, top_entropy_mask  # noqa: E402

NAME = "forking_tokens"


METHODS = {
    "all tokens (grpo)": grpo,
    "top-20% entropy": grpo >> top_entropy_mask(rho=0.2, scope="micro_batch"),
    "bottom-80% entropy": grpo >> bottom_entropy_mask(rho=0.2),
}


def _tail_reward(run: list[dict]) -> float:
    values = [h["reward/mean"] for h in run if "reward/mean" in h][-10:]
    return sum(values) / len(values)


def main() -> None:
    args = C.parse_args(__doc__)
    started = time.perf_counter()
    log = C.logger(NAME)
    folder = C.out_dir(args, NAME)
    steps, every = C.smoke_or(args, (3, 3), (100, 20))
    size, n = C.smoke_or(args, (8, 4), (128, 16))
    results = C.run_methods(args, METHODS, log, steps, every, size, n)
    rows, curves = {}, {"pass@1": {}, f"pass@{n}": {}, "reward/mean": {}}
    for name, runs in results.items():
        rows[name] = {
            "pass@1 start": [run[0]["pass@1"] for run in runs],
            "pass@1 end": [run[-1]["pass@1"] for run in runs],
            f"pass@{n} end": [run[-1][f"pass@{n}"] for run in runs],
            "train reward, last 10 steps": [_tail_reward(run) for run in runs],
            "token entropy end": [run[-1]["token_entropy"] for run in runs],
        }
        for key in curves:
            curves[key][name] = [[(h["step"], h[key]) for h in run if key in h] for run in runs]
    table = C.markdown_table(rows, list(next(iter(rows.values()))))
    C.plot_curves(curves["pass@1"], folder / "pass1.png", "pass@1 on held-out problems", "RL step", "pass@1")
    C.plot_curves(curves[f"pass@{n}"], folder / f"pass{n}.png", f"pass@{n} on held-out problems", "RL step",
                  f"pass@{n}")
    C.plot_curves(curves["reward/mean"], folder / "train_reward.png", "training reward (batch mean)", "RL step",
                  "reward")
    C.write_results(folder, table, {"rows": rows, "steps": steps, "eval_size": size, "samples": n}, started, args)


if __name__ == "__main__":
    main()
