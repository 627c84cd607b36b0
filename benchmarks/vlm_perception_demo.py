"""CPU demonstration: does PAPO's perception KL help a tiny vision-language model count?

Task: :class:`rlobj.train.shapes.ShapesTask` (``question="count"``: 1 to 3 coloured squares on a
28 x 28 image, "how many squares?"). Policy: the tiny LLaVA of
:func:`rlobj.rollout.tiny_vlm.build_tiny_vlm` (CLIP tower with 7-pixel patches, 2-layer decoder),
built locally. Each seed warms the model up with the same supervised steps on the same stream
(the two arms' warm-ups are identical: same seed, same data), evaluates pass@1 ("before RL"),
then runs the same number of RL steps with

* ``grpo``: the library's GRPO preset;
* ``papo``: ``papo_recipe`` (GRPO-style clipping, perception KL gamma 0.02 between the policy on
  the image and on the image with 60 % of its 7-px patches blackened, double entropy 0.05,
  k3 KL 0.01 to the reference), with ``PerturbedContext`` blackening patches to black.

and evaluates pass@1 again on a held-out ShapesTask set (``evaluation.samples`` samples per
prompt, temperature 1).

    PYTHONPATH=. python benchmarks/vlm_perception_demo.py --seeds 0 1 2 --json out.json --plot out.png
    PYTHONPATH=. python benchmarks/vlm_perception_demo.py --replot out.json --plot out.png   # plot only
"""

import argparse
import json
import time

import lightning as L
import torch

from rlobj.train import RLDataModule, RLModule
from rlobj.train.shapes import ShapesTask
from rlobj.verifiers import CountAnswer

PATCHES = {"patches": {"ratio": 0.6, "patch_size": 7, "fill": -1.0, "seed": 0}}  # -1: black after (x-0.5)/0.5
ARMS = {"grpo": dict(objective="grpo"),
        "papo": dict(objective="papo_recipe", providers=[{"PerturbedContext": {"perturbation": PATCHES}}])}


def run_arm(arm: str, seed: int, args) -> dict:
    torch.manual_seed(seed)
    module = RLModule(policy={"tiny_vlm": {"kind": "llava", "image_size": 28, "patch_size": 7, "hidden_size": 64,
                                           "layers": 2, "heads": 2, "seed": seed}},
                      rollout={"group_size": args.group_size, "max_new_tokens": 3}, update={"grad_clip": 1.0},
                      warmup={"objective": ["sft"], "steps": args.warmup, "lr": 1e-3, "eval_at_end": True},
                      evaluation={"samples": args.eval_samples, "k": [1]}, verifier=CountAnswer(),
                      optimizer=lambda params: torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0), seed=seed,
                      **ARMS[arm])
    data = RLDataModule(train=ShapesTask(seed=1 + 10 * seed, question="count"),
                        eval=ShapesTask(seed=1000, question="count"), prompts_per_step=args.prompts,
                        eval_size=args.eval_size)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.warmup + args.rl_steps, limit_val_batches=0,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, deterministic=True)
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    before = next(values for label, _, values in module.eval_history if label == "before RL")
    after = module.evaluate(data.eval_records())
    kl = module.last_metrics.get("perception/kl")
    return {"before": before["pass@1"], "after": after["pass@1"], "seconds": time.perf_counter() - start,
            "last_perception_kl": None if kl is None else float(kl)}


def plot(rows: list[dict], path: str) -> None:
    """Pass@1 before and after RL, per seed, one panel per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in rows))
    figure, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 3.4), sharey=True, squeeze=False)
    for axis, arm in zip(axes[0], arms, strict=True):
        mine = [r for r in rows if r["arm"] == arm]
        for r in mine:
            axis.plot([0, 1], [r["before"], r["after"]], marker="o", label=f"seed {r['seed']}")
        axis.axhline(1 / 3, color="grey", linestyle=":", linewidth=1, label="chance (1/3)")
        axis.set_xticks([0, 1], ["after sft warm-up", "after 40 RL steps"])
        axis.set_title(arm)
        axis.set_ylim(0, 1)
    axes[0][0].set_ylabel("pass@1 (held-out, 8 samples)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    figure.suptitle("tiny LLaVA counting squares: GRPO vs PAPO's recipe")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--rl-steps", type=int, default=60)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eval-size", type=int, default=96)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="write the before/after plot here (PNG)")
    parser.add_argument("--replot", default=None, help="only plot the rows of this --json file")
    args = parser.parse_args()
    if args.replot:
        with open(args.replot) as handle:
            plot(json.load(handle)["rows"], args.plot or "vlm_perception_demo.png")
        return
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            result = run_arm(arm, seed, args)
            rows.append({"arm": arm, "seed": seed, **result})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| arm | seed | pass@1 before RL | pass@1 after RL | change | seconds |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['seed']} | {r['before']:.3f} | {r['after']:.3f} | {r['after'] - r['before']:+.3f} "
              f"| {r['seconds']:.0f} |")
    for arm in args.arms:
        mine = [r for r in rows if r["arm"] == arm]
        mean = sum(r["after"] - r["before"] for r in mine) / len(mine)
        print(f"mean change {arm}: {mean:+.3f} over {len(mine)} seeds")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "rows": rows}, handle, indent=1)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
