"""Demonstration: a tiny model learns to use a calculator tool (multi-turn RL on the CPU).

Runs ``examples/configs/multiturn/calculator_tool.yaml`` and ``calculator_no_tool.yaml`` (the same
warm-up and RL budget, without the tool) with ``rlobj fit``, reads their metrics.csv and prints:
evaluation pass@1 before/after RL, the training reward and tool-call success rate over the first
and last 10 RL steps; saves a plot of the reward and tool-call success per RL step.

    python benchmarks/multiturn_tool_demo.py [--out docs/assets/multiturn_tool_demo.png] [--root runs/demo]
"""

import argparse
import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"with tool": "calculator_tool.yaml", "without tool": "calculator_no_tool.yaml"}


def run(name: str, config: str, root: Path) -> tuple[list[dict], dict, float]:
    log_dir = root / name.replace(" ", "_")
    start = time.perf_counter()
    command = [sys.executable, "-m", "rlobj.train.cli", "fit", "--config",
               str(REPO / "examples" / "configs" / "multiturn" / config),
               f"--trainer.logger.init_args.save_dir={log_dir}", f"--trainer.default_root_dir={log_dir}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{name}: rlobj fit failed\n{result.stderr[-3000:]}")
    table = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(before RL|after RL)\s+([\d.]+)\s+([\d.]+)", line)
        if match:
            table[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    path = sorted(log_dir.rglob("metrics.csv"))[-1]
    with open(path) as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("phase") == "1.0" and r.get("reward/mean")]
    return rows, table, seconds


def mean(rows, key):
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "assets" / "multiturn_tool_demo.png"))
    parser.add_argument("--root", default=str(REPO / "runs" / "multiturn_demo"))
    args = parser.parse_args()
    root = Path(args.root)
    results = {name: run(name, config, root) for name, config in CONFIGS.items()}
    print("| run | pass@1 before RL | pass@1 after RL | reward, first 10 RL steps | reward, last 10 RL steps "
          "| episodes with a successful tool call, first 10 | same, last 10 | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (rows, table, seconds) in results.items():
        before, after = table.get("before RL", (float("nan"),))[0], table.get("after RL", (float("nan"),))[0]
        tool = [mean(rows[:10], "rollout/tool_use_rate"), mean(rows[-10:], "rollout/tool_use_rate")]
        tool_text = [f"{t:.3f}" if t == t else "-" for t in tool]
        print(f"| {name} | {before:.3f} | {after:.3f} | {mean(rows[:10], 'reward/mean'):.3f} | "
              f"{mean(rows[-10:], 'reward/mean'):.3f} | {tool_text[0]} | {tool_text[1]} | {seconds:.0f} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, (rows, _, _) in results.items():
        axes[0].plot([float(r["reward/mean"]) for r in rows], label=name)
        if rows and rows[0].get("rollout/tool_use_rate") not in (None, ""):
            axes[1].plot([float(r["rollout/tool_use_rate"]) for r in rows], label=name)
    axes[0].set(title="training reward per RL step", xlabel="RL step", ylabel="reward/mean")
    axes[1].set(title="tool-call success rate per RL step", xlabel="RL step", ylabel="episodes with a successful call")
    axes[0].legend()
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
