"""Script run by test_vllm_ranks.py: 2 RL steps under Lightning DDP (2 CPU processes, gloo), each
rank driving its own colocated vLLM engine (``distributed_executor_backend="external_launcher"``).

``python ranks_worker.py OUT_DIR``: every rank writes ``OUT_DIR/rank<r>.pt`` with its engine's
settings, its updates, and the log-probs its engine and its trainer give a fixed sequence after
the last weight push (they agree when the push reached that rank's engine).
"""

import functools
import os
import sys

import torch


def main(out: str) -> None:
    import lightning as L

    from rlobj.rollout import SamplingConfig
    from rlobj.train import AdditionTask, RLDataModule, RLModule

    torch.manual_seed(0)
    module = RLModule(objective="grpo",
                      rollout={"engine": "vllm", "group_size": 4, "max_new_tokens": 4},
                      policy={"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 0}},
                      optimizer=functools.partial(torch.optim.AdamW, lr=3e-2, weight_decay=0.0),
                      update={"grad_clip": None}, warmup={"eval_at_end": False},
                      verifier=lambda completion, record: float(len(completion)))
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=2, eval_size=2)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2, limit_val_batches=0,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=out)
    trainer.fit(module, datamodule=data)
    engine = module.engine
    prompt = [module.encode("12+30=")]
    rollout = engine.generate(prompt, n=2, sampling=SamplingConfig(max_new_tokens=3, temperature=1.0, seed=5))
    trainer_logp, _ = module.models.no_grad_logprobs(rollout.to(module.device_of_policy()))
    difference = float(((rollout.logp_rollout - trainer_logp.cpu()) * rollout.response_mask).abs().max())
    torch.save({"rank": trainer.global_rank, "world_size": trainer.world_size, "rl_updates": module.rl_updates,
                "executor": engine.llm.llm_engine.vllm_config.parallel_config.distributed_executor_backend,
                "difference": difference, "local_rank": os.environ.get("LOCAL_RANK")},
               os.path.join(out, f"rank{trainer.global_rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
