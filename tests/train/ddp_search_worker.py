"""Script run by test_search_samplers.py: two RL steps of ``sampler: mcts`` under DDP on 2 CPU processes.

``python ddp_search_worker.py OUT``: each rank searches its own prompts (the data is sharded),
the update is synchronised by DDP; every rank saves its weights, its search metrics and the
records it trained on to ``OUT.<rank>``.
"""

import functools
import sys

import torch


def main(out: str) -> None:
    import lightning as L

    from rlobj.train import AdditionTask, RLDataModule, RLModule

    class Recording(RLModule):
        def rl_update(self, records, step):
            metrics = super().rl_update(records, step)
            self.seen = getattr(self, "seen", []) + [[r["prompt"] for r in records]]
            self.search = getattr(self, "search", []) + [{k: float(v) for k, v in metrics.items()
                                                          if k.startswith(("search/", "verifier/"))}]
            return metrics

    torch.manual_seed(0)
    module = Recording(objective=["tree_value_advantage", "clip_ratio", "token_mean"],
                       sampler={"mcts": {"config": {"width": 2, "max_depth": 3, "step_tokens": 2, "token_budget": 24},
                                         "delimiter": None}},
                       policy={"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
                       rollout={"group_size": 2, "max_new_tokens": 5},
                       optimizer=functools.partial(torch.optim.SGD, lr=1.0), update={"grad_clip": None},
                       warmup={"eval_at_end": False})
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=4, eval_size=2)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    torch.save({"weights": {n: p.detach().clone() for n, p in module.policy.named_parameters()},
                "seen": module.seen, "search": module.search, "rank": trainer.global_rank,
                "world_size": trainer.world_size}, f"{out}.{trainer.global_rank}")


if __name__ == "__main__":
    main(sys.argv[1])
