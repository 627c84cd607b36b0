"""CPU demonstration: a curriculum and hint scaffolding vs the fixed stream at the same compute.

Task: :class:`rlobj.train.LeveledAddition` (one-, two- and three-digit sums, one level per record
in turn). Each arm warms the tiny model up with the same supervised steps on the same stream,
then runs the same number of RL steps (same prompts per step, same group size, so the same
number of sampled responses and optimizer steps); only the data strategy differs. Final pass@1
(``evaluation.samples`` samples per prompt, no hints) on a held-out LeveledAddition set.

    PYTHONPATH=. python benchmarks/data_loops_demo.py --seeds 0 1 2 --json out.json
"""

import argparse
import json
import time

import lightning as L
import torch

from rlobj.train import (
    DifficultyCurriculum,
    FixedStream,
    HintScaffold,
    LeveledAddition,
    RLDataModule,
    RLModule,
)

ARMS = {
    "fixed stream": lambda: FixedStream(),
    "curriculum (CLPO bands)": lambda: DifficultyCurriculum(revisit_fraction=0.5),
    "hints (SEELE, per level)": lambda: HintScaffold(target=0.5, item="domain", ability_window=10, levels=4),
}


def run_arm(strategy, seed: int, args) -> dict:
    torch.manual_seed(seed)
    module = RLModule(objective="grpo", policy={"tiny_model": {"hidden_size": 128, "layers": 2, "heads": 2,
                                                               "seed": seed}},
                      rollout={"group_size": args.group_size, "max_new_tokens": 5},
                      update={"grad_clip": 1.0},
                      warmup={"objective": ["sft"], "steps": args.warmup, "lr": 1e-3, "eval_at_end": False},
                      evaluation={"samples": args.eval_samples, "k": [1]},
                      optimizer=lambda params: torch.optim.AdamW(params, lr=3e-4, weight_decay=0.0), seed=seed)
    data = RLDataModule(train=LeveledAddition(seed=1 + 10 * seed), eval=LeveledAddition(seed=2),
                        prompts_per_step=args.prompts, eval_size=args.eval_size, strategy=strategy)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.warmup + args.rl_steps, limit_val_batches=0,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, deterministic=True)
    trainer.fit(module, datamodule=data)
    records = data.eval_records()
    samples: list[dict] = []
    result = module.evaluate(records, samples_out=samples)
    by_level = {}
    for level in ("level0", "level1", "level2"):  # pass@1 = mean of c / n over the level's prompts
        rows = [s for s, r in zip(samples, records) if r["domain"] == level]
        by_level[level] = sum(s["c"] / s["n"] for s in rows) / max(len(rows), 1)
    return {"pass@1": result["pass@1"], **by_level}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--rl-steps", type=int, default=60)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--eval-size", type=int, default=300)
    parser.add_argument("--eval-samples", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for name, make in ARMS.items():
            start = time.perf_counter()
            row = run_arm(make(), seed, args)
            row["seconds"] = time.perf_counter() - start
            results.setdefault(name, []).append(row)
            print(f"seed {seed} {name:28s} " + " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
    print(f"\n{args.warmup} SFT warm-up steps, then {args.rl_steps} RL steps x {args.prompts} prompts x "
          f"{args.group_size} samples; pass@1 of {args.eval_samples} samples on {args.eval_size} held-out prompts")
    print("| arm | pass@1 per seed | mean | level0 | level1 | level2 |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("pass@1", "level0", "level1", "level2")}
        seeds = ", ".join(f"{r['pass@1']:.3f}" for r in rows)
        print(f"| {name} | {seeds} | {mean['pass@1']:.3f} | {mean['level0']:.3f} | {mean['level1']:.3f} | "
              f"{mean['level2']:.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
