"""The default run: tiny Qwen2 + character tokenizer, ``sft`` warm-up, then GRPO, on addition.

``python -m rlobj.train.default_run`` (same as ``rlobj fit --config examples/configs/default.yaml``)
builds everything locally (nothing is downloaded), trains on 2 CPU cores in a few minutes and
prints a before/after table of pass@1 / pass@8 on a fixed evaluation set of 256 held-out-style
problems (8 samples each, temperature 1).
"""

import argparse
import functools
import time

import lightning as L
import torch

from rlobj.data.tasks import AdditionTask
from rlobj.train.callbacks import EvalTable, MetricPlots, ProgressPrinter
from rlobj.train.config import EvalConfig, PolicyConfig, RolloutConfig, UpdateConfig, WarmupConfig
from rlobj.train.datamodule import RLDataModule
from rlobj.train.module import RLModule

__all__ = ["main", "build"]

#: The default schedule (see ``main``'s arguments).
DEFAULTS = dict(warmup_steps=600, rl_steps=350, prompts=32, group_size=8, lr=3e-4, sft_lr=1e-3,
                eval_size=256, seed=0, logits="auto")


def build(warmup_steps: int, rl_steps: int, prompts: int, group_size: int, lr: float, sft_lr: float,
          eval_size: int, seed: int, root: str, objective="grpo", progress_every: int = 25,
          logits: str = "auto"):
    """Module, DataModule and Trainer of the default run."""
    module = RLModule(
        objective=objective,
        policy=PolicyConfig(tiny_model={"hidden_size": 128, "layers": 2, "heads": 2, "seed": seed}, logits=logits),
        rollout=RolloutConfig(group_size=group_size, max_new_tokens=5),
        update=UpdateConfig(grad_clip=1.0),
        optimizer=functools.partial(torch.optim.AdamW, lr=lr, weight_decay=0.0),
        warmup=WarmupConfig(steps=warmup_steps, lr=sft_lr),
        evaluation=EvalConfig(samples=8, k=[1, 8]),
        track_ref_kl=True, seed=seed)
    data = RLDataModule(train=AdditionTask(seed=seed + 1), eval=AdditionTask(seed=seed + 1000),
                        prompts_per_step=prompts, eval_size=eval_size)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=warmup_steps + rl_steps, limit_val_batches=0,
        logger=L.pytorch.loggers.CSVLogger(root, name="default_run"), enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=1,
        callbacks=[ProgressPrinter(progress_every), EvalTable(), MetricPlots()], deterministic=True)
    return module, data, trainer


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--root", default="runs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    L.seed_everything(args.seed, verbose=False)
    start = time.perf_counter()
    options = {k: getattr(args, k) for k in DEFAULTS}
    module, data, trainer = build(**options, root=args.root)
    print(f"default run: tiny Qwen2 (hidden 128, 2 layers, 2 heads), {args.warmup_steps} sft steps, "
          f"then {args.rl_steps} GRPO steps x {args.prompts} prompts x {args.group_size} samples", flush=True)
    trainer.fit(module, datamodule=data)
    table = next(c for c in trainer.callbacks if isinstance(c, EvalTable)).table
    print(f"wall time {time.perf_counter() - start:.0f} s; logs and plots in {trainer.log_dir}", flush=True)
    return table


if __name__ == "__main__":
    main()
