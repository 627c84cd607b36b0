r"""Shared harness of the small-scale reproductions (``examples/reproductions/*.py``).

Every experiment uses the default run's model and task: the tiny Qwen2 (hidden 128, 2 layers,
2 heads) with the character tokenizer, warmed up with ``sft`` on generated two-number addition
(``AdditionTask``, operands 0..99), then trained with RL by :class:`rlobj.train.RLModule`
driven step by step without a Lightning ``Trainer`` (same ``sft_update`` / ``rl_update`` the
trainer calls), so that one warm-started checkpoint per seed can be shared by all the methods
of an experiment and evaluated as often as the experiment needs.

The warm-up is the default run's (``WARMUP_STEPS`` = 600 sft steps of 32 prompts): the
warm-started model solves only a minority of problems at pass@1 (0.05-0.18 depending on the
seed) but almost all of them at pass@64, so RL has room to improve and exploration matters.
RL then runs ``RL_PROMPTS`` = 16 prompts x ``GROUP`` = 8 samples per step at the default run's
learning rate (3e-4).

Evaluation samples ``n`` answers per problem at temperature 1 on a fixed held-out-style set
(``AdditionTask(seed=1000 + seed)``) and scores them with the exact-match verifier (always the
clean one, also in the noisy-verifier experiment).
"""

import argparse
import copy
import functools
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

from rlobj.data.tasks import AdditionTask, ExactAnswer
from rlobj.eval.passk import pass_at_k
from rlobj.rollout import SamplingConfig
from rlobj.train.module import RLModule

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "reproductions"
CACHE = ROOT / "runs" / "reproductions"

#: Warm-up (sft) steps of 32 prompts before RL; shared by all experiments.
WARMUP_STEPS = 600
PROMPTS = 32
#: Prompts per RL step (x GROUP samples each).
RL_PROMPTS = 16
GROUP = 8
TINY = {"hidden_size": 128, "layers": 2, "heads": 2}


def parse_args(description: str, seeds: int = 3) -> argparse.Namespace:
    """``--smoke`` (a few steps, 1 seed, no cache, output under runs/), ``--seeds``, ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="a few steps, 1 seed (< 30 s): keeps the script working")
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--out", default=None, help="output folder (default docs/reproductions/<name>, "
                                                    "runs/reproductions/smoke/<name> with --smoke)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.seeds = 1
    return args


def out_dir(args, name: str) -> Path:
    if args.out:
        path = Path(args.out)
    elif args.smoke:
        path = CACHE / "smoke" / name
    else:
        path = DOCS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_module(objective, seed: int, module_cls=RLModule, **options) -> RLModule:
    """An :class:`RLModule` with the default run's model and sampling settings, built."""
    settings = dict(rollout={"group_size": GROUP, "max_new_tokens": 5}, warmup={"lr": 1e-3},
                    optimizer=functools.partial(torch.optim.AdamW, lr=3e-4, weight_decay=0.0), update={"grad_clip": 1.0},
                    evaluation={"samples": 8, "k": [1, 8]}, policy={"tiny_model": {**TINY, "seed": seed}}, seed=seed)
    for key, value in options.items():  # group mappings update the defaults
        settings[key] = {**settings[key], **value} if isinstance(settings.get(key), dict) else value
    module = module_cls(objective=objective, **settings)
    module.build()
    return module


def train_task(seed: int) -> AdditionTask:
    return AdditionTask(seed=seed + 1)


def eval_records(seed: int, size: int) -> list[dict]:
    task = AdditionTask(seed=seed + 1000)
    return [task.record(i) for i in range(size)]


def smoke_or(args, smoke, full):
    return smoke if args.smoke else full


def warm_start(seed: int, steps: int = WARMUP_STEPS, use_cache: bool = True) -> dict:
    """State dict of the tiny model after ``steps`` sft steps on addition (cached per seed)."""
    path = CACHE / f"warm_seed{seed}_steps{steps}.pt"
    if use_cache and path.exists():
        return torch.load(path, weights_only=True)
    torch.manual_seed(seed)
    module = new_module("grpo", seed)
    task = train_task(seed)
    for step in range(steps):
        module.sft_update(task.records(step * PROMPTS, PROMPTS))
    state = copy.deepcopy(module.policy.state_dict())
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
    return state


def sample_counts(module: RLModule, records: list[dict], n: int, seed: int, chunk: int = 2048,
                  with_answers: bool = False):
    """``n`` samples per record at temperature 1: the number correct per record (clean verifier)."""
    engine = module._ensure_engine()
    verifier = ExactAnswer()
    per_call = max(1, chunk // n)
    counts, answers = [], []
    module.policy.eval()
    for start in range(0, len(records), per_call):
        part = records[start:start + per_call]
        sampling = SamplingConfig(max_new_tokens=module.cfg.rollout.max_new_tokens, temperature=1.0,
                                  seed=seed * 1_000_003 + start)
        rollout = engine.generate([module.encode(r["prompt"]) for r in part], n=n, sampling=sampling)
        texts = module.decode_responses(rollout)
        for index, record in enumerate(part):
            rows = texts[index * n:(index + 1) * n]
            counts.append(sum(verifier(text, record) for text in rows))
            answers.append(rows)
    module.policy.train()
    counts = [int(c) for c in counts]
    return (counts, answers) if with_answers else counts


def passk(counts: list[int], n: int, k: int) -> float:
    """Mean unbiased pass@k over problems from correct counts out of ``n``."""
    return sum(pass_at_k(n, c, k) for c in counts) / len(counts)


def rl_run(objective, seed: int, warm: dict, steps: int, evaluate=None, eval_every: int = 0,
           module_cls=None, log=None, prompts: int = RL_PROMPTS, **options):
    """RL for ``steps`` steps from the warm-started weights; ``evaluate(module, step)`` every ``eval_every``.

    Returns ``(module, history)`` with one dict of training metrics per step (plus the
    evaluation's results at the steps where it ran).
    """
    torch.manual_seed(seed)
    module = new_module(objective, seed, module_cls=module_cls or RLModule, **options)
    module.policy.load_state_dict(warm)
    task = train_task(seed)
    history = []
    if evaluate is not None and eval_every:
        history.append({"step": 0, **evaluate(module, 0)})
    for step in range(steps):
        first = WARMUP_STEPS * PROMPTS + step * prompts  # fresh prompts after the warm-up's
        metrics = module.rl_update(task.records(first, prompts), WARMUP_STEPS + step)
        row = {"step": step + 1, **{k: float(v) for k, v in metrics.items()}}
        row["token_entropy"] = row.get("entropy", math.nan)  # mean token entropy of the policy on its samples
        if evaluate is not None and eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps):
            row.update(evaluate(module, step + 1))
        history.append(row)
        if log is not None and ((step + 1) % max(1, steps // 4) == 0):
            log(f"    step {step + 1}/{steps}: reward {row.get('reward/mean', math.nan):.3f} "
                f"entropy {row.get('token_entropy', math.nan):.3f}")
    return module, history


# ------------------------------------------------------------------ tables and plots
def mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def markdown_table(rows: dict[str, dict[str, list[float]]], columns: list[str], first: str = "method") -> str:
    """``rows[name][column]`` = values over seeds -> markdown table of mean ± std (sample std)."""
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(mean_std(values.get(c, [])) for c in columns) + " |")
    return "\n".join(lines)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_solve_rates(pairs: list[tuple[list[float], list[float]]], path: Path, xlabel: str,
                     symlog_below: float | None = None) -> None:
    """Per-problem solve rates before (x) vs after (y) RL, one colour per seed, the diagonal in grey;
    ``symlog_below``: both axes symlog, linear below that rate."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    for seed, (before, after) in enumerate(pairs):
        axis.scatter(before, after, s=8, alpha=0.5, label=f"seed {seed}")
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8)
    if symlog_below is not None:
        axis.set_xscale("symlog", linthresh=symlog_below)
        axis.set_yscale("symlog", linthresh=symlog_below)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("GRPO solve rate")
    axis.set_title("per-problem solve rates")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_curves(curves: dict[str, list[list[tuple[float, float]]]], path: Path, title: str, xlabel: str,
                ylabel: str, logx: bool = False, smooth: int = 1) -> None:
    """One line per method: mean over seeds of ``(x, y)`` series (same x), band = ±1 std; ``smooth``:
    trailing moving average over that many points (series cut to the shortest one)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, series in curves.items():
        series = [s for s in series if s]
        if not series:
            continue
        xs = [x for x, _ in series[0][:min(len(s) for s in series)]]
        ys = [[s[i][1] for s in series] for i in range(len(xs))]
        means = [statistics.mean(v) for v in ys]
        stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in ys]
        if smooth > 1:
            means = [statistics.mean(means[max(0, i - smooth + 1):i + 1]) for i in range(len(xs))]
            stds = [statistics.mean(stds[max(0, i - smooth + 1):i + 1]) for i in range(len(xs))]
        axis.plot(xs, means, label=name, marker="o" if len(xs) <= 12 else None, markersize=3)
        axis.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.15)
    if logx:
        axis.set_xscale("log", base=2)
    axis.set_title(title, fontsize=9)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def write_results(folder: Path, table: str, extra: dict, started: float, args) -> None:
    """``results.md`` (the table + wall time) and ``results.json`` (raw numbers)."""
    wall = time.perf_counter() - started
    mode = "smoke" if args.smoke else "full"
    text = f"{table}\n\n_{mode} run, {args.seeds} seed(s), wall time {wall:.0f} s on {torch.get_num_threads()} thread(s)._\n"
    (folder / "results.md").write_text(text)
    (folder / "results.json").write_text(json.dumps({**extra, "wall_seconds": wall, "seeds": args.seeds,
                                                      "smoke": args.smoke}, indent=1, default=float))
    print(text, flush=True)


def logger(name: str):
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{name} {time.perf_counter() - start:6.1f}s] {message}", flush=True)

    return log


def run_methods(args, methods: dict, log, steps: int, every: int, size: int, n: int,
                configure=None) -> dict[str, list]:
    """Every method on every seed, all from the seed's warm start; the histories per method.

    ``configure(value, seed) -> (objective, rl_run keyword arguments)`` turns a ``methods`` value
    into what :func:`rl_run` needs (default: the value is the objective). Evaluation: pass@1 and
    pass@n on the seed's held-out records every ``every`` steps.
    """
    results = {name: [] for name in methods}
    for seed in range(args.seeds):
        warm = warm_start(seed, steps=smoke_or(args, 5, WARMUP_STEPS), use_cache=not args.smoke)
        records = eval_records(seed, size)

        def evaluate(module, step, seed=seed, records=records):
            counts = sample_counts(module, records, n, seed=seed * 7 + step)
            return {"pass@1": passk(counts, n, 1), f"pass@{n}": passk(counts, n, n)}

        for name, value in methods.items():
            log(f"seed {seed}: {name}")
            objective, extra = configure(value, seed) if configure is not None else (value, {})
            _, history = rl_run(objective, seed, warm, steps, evaluate=evaluate, eval_every=every, log=log,
                                **extra)
            results[name].append(history)
    return results
