"""Script run by test_ddp.py: one RL step under Lightning (DDP on 2 CPU processes, or 1 process).

``python ddp_worker.py DEVICES OUT``: builds the same tiny policy and the same global rollout
batch (uneven response lengths) everywhere; with 2 devices each rank trains on its half. The step
is taken once with ``token_mean`` and once with ``seq_mean_token_mean`` (weights reset in
between, SGD so the update is linear in the gradient); rank 0 saves the updated weights to OUT.
"""

import functools
import os
import sys

import torch


def main(devices: int, out: str) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import lightning as L
    from _helpers import synthetic_rewards, synthetic_rollout

    from rlobj.rollout._batching import take
    from rlobj.train import AdditionTask, RLDataModule, RLModule
    from rlobj.train.module import _objective

    class FixedRolloutModule(RLModule):
        def rl_update(self, records, step):
            rollout = synthetic_rollout(self, groups=4, group_size=4, seed=7)
            rewards = synthetic_rewards(len(rollout), seed=7)
            world, rank = self.world_size, self.rank
            rows = slice(rank * len(rollout) // world, (rank + 1) * len(rollout) // world)
            rollout = take(rollout, torch.arange(rows.start, rows.stop))  # every field, vision included
            start = [p.detach().clone() for p in self.policy.parameters()]
            results = {}
            for name in ("token_mean", "seq_mean_token_mean"):
                with torch.no_grad():
                    for p, p0 in zip(self.policy.parameters(), start):
                        p.copy_(p0)
                self.objective = _objective(["group_zscore", "clip_ratio", name], "objective")
                metrics = self.update_on_rollout(rollout, rewards[rows], )
                results[name] = {n: p.detach().clone() for n, p in self.policy.named_parameters()}
            results["tokens_on_rank"] = int(rollout.response_mask.sum())
            self.results = results
            return metrics

    torch.manual_seed(0)
    module = FixedRolloutModule(policy={"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
                                rollout={"group_size": 4, "max_new_tokens": 6},
                                optimizer=functools.partial(torch.optim.SGD, lr=1.0),
                                update={"grad_clip": None, "micro_batch_size": 3}, warmup={"eval_at_end": False})
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=2, eval_size=2)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                        max_steps=2, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    tokens = torch.tensor([module.results["tokens_on_rank"]])
    if trainer.world_size > 1:
        gathered = trainer.strategy.all_gather(tokens)
        tokens = gathered.flatten()
    if trainer.global_rank == 0:
        torch.save({"token_mean": module.results["token_mean"],
                    "seq_mean_token_mean": module.results["seq_mean_token_mean"],
                    "tokens_per_rank": tokens.tolist(), "world_size": trainer.world_size}, out)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
