"""Script run by test_fsdp.py: 3 RL steps under Lightning, FSDP2 on 2 CPU processes or 1 process.

``python fsdp_worker.py DEVICES OUT [--steps N] [--save-to DIR] [--resume CKPT]``: the same tiny policy and the same 3 global rollout batches
(uneven response lengths) everywhere; under ``ModelParallelStrategy(data_parallel_size=2)`` each
rank trains on its half with the policy sharded per decoder layer (FSDP2). The objective reads the
reference (k3 KL), so the sharded reference copy is exercised too. Rank 0 saves the full weights.
"""

import functools
import os
import sys

import torch


def main(devices: int, out: str, steps: int = 3, save_to: str | None = None, resume: str | None = None) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import lightning as L
    from _helpers import synthetic_rewards, synthetic_rollout
    from lightning.pytorch.strategies import ModelParallelStrategy

    from rlobj.rollout._batching import take
    from rlobj.train import AdditionTask, RLDataModule, RLModule
    from rlobj.train.sharding import full_value, is_sharded

    class FixedRolloutModule(RLModule):
        def rl_update(self, records, step):
            rollout = synthetic_rollout(self, groups=4, group_size=4, seed=7 + step)
            rewards = synthetic_rewards(len(rollout), seed=7 + step)
            world, rank = self.world_size, self.rank
            rows = slice(rank * len(rollout) // world, (rank + 1) * len(rollout) // world)
            rollout = take(rollout, torch.arange(rows.start, rows.stop))  # every field, vision included
            self.sharded = is_sharded(self.policy)
            return self.update_on_rollout(rollout, rewards[rows])

    torch.manual_seed(0)
    module = FixedRolloutModule(objective=["grpo", {"k3_kl": {"beta": 0.1}}],
                                policy={"tiny_model": {"hidden_size": 64, "layers": 2, "heads": 2, "seed": 0}},
                                rollout={"group_size": 4, "max_new_tokens": 6},
                                optimizer=functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.0),
                                update={"grad_clip": 1.0, "micro_batch_size": 3}, warmup={"eval_at_end": False})
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=2, eval_size=2)
    strategy = ModelParallelStrategy(data_parallel_size=devices, tensor_parallel_size=1) if devices > 1 else "auto"
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=save_to, every_n_train_steps=1, save_top_k=-1)] \
        if save_to else []
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=steps, limit_val_batches=0,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=bool(save_to), callbacks=callbacks, use_distributed_sampler=False)
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    weights = {name: full_value(p.detach()).clone() for name, p in module.policy.named_parameters()}
    if trainer.global_rank == 0:
        torch.save({"weights": weights, "world_size": trainer.world_size, "sharded": module.sharded,
                    "rl_updates": module.rl_updates, "logits": module.models.logits}, out)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # end the process group before the interpreter exits: a rank left to tear it down at exit
        # was seen aborting ('terminate called without an active exception') after a finished run
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("devices", type=int)
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--save-to", default=None)
    parser.add_argument("--resume", default=None)
    args = parser.parse_args()
    main(args.devices, args.out, args.steps, args.save_to, args.resume)
