"""Child process of test_checkpoint_kill.py: a tiny SFT + RL run checkpointing every step.

    python checkpoint_kill_child.py OUT_DIR RESULT_JSON [--stall-at-save N] [--resume CKPT]

``--stall-at-save N``: the N-th checkpoint file write (Lightning's own save path: torch.save into
memory, then fsspec's transactional write) writes half its bytes, syncs them to disk, creates
``OUT_DIR/stalled`` and waits to be killed (the parent sends SIGKILL then).
"""

import functools
import json
import os
import sys
import time

import fsspec.implementations.local as fsspec_local
import lightning as L
import torch

from rlobj.train import AdditionTask, RLDataModule, RLModule

OBJECTIVE = ["group_zscore", {"clip_ratio": {"eps_high": 0.28}}, "token_mean",
             {"adaptive_entropy": {"target": 5.0, "init_coef": 0.0, "step": 0.01}}]  # stateful term
MAX_STEPS = 2 + 3 * 2  # 2 SFT batches, then 3 RL batches of 2 updates (1 epoch, 2 mini-batches)


class Recorder(L.Callback):
    def __init__(self):
        self.rows = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows[int(batch["step"])] = {k: float(v) for k, v in pl_module.last_metrics.items()
                                         if not k.startswith(("time/", "throughput/"))}


def stall_at_save(number: int, out_dir: str) -> None:
    saves = [0]

    def write(self, data):
        if len(data) > 4096:  # a checkpoint's bytes (not a small header)
            saves[0] += 1
            if saves[0] == number:
                half = len(data) // 2
                self.f.write(data[:half])
                self.f.flush()
                os.fsync(self.f.fileno())
                with open(os.path.join(out_dir, "stalled"), "w") as marker:
                    marker.write(f"{getattr(self, 'temp', self.path)} {half} of {len(data)} bytes of {self.path}\n")
                time.sleep(600)
        return self.f.write(data)

    fsspec_local.LocalFileOpener.write = write


def main() -> None:
    out_dir, result_path = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if "--stall-at-save" in args:
        stall_at_save(int(args[args.index("--stall-at-save") + 1]), out_dir)
    resume = args[args.index("--resume") + 1] if "--resume" in args else None
    torch.manual_seed(123)
    torch.set_num_threads(1)
    module = RLModule(objective=OBJECTIVE, policy={"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 0}},
                      rollout={"group_size": 4, "max_new_tokens": 4}, warmup={"steps": 2},
                      update={"ppo_epochs": 1, "mini_batch_size": 8, "shuffle_minibatches": True},
                      optimizer=functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.0),
                      evaluation={"samples": 2, "k": [1]}, seed=3)
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=4, eval_size=2)
    recorder = Recorder()
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=out_dir, save_last=True, every_n_train_steps=1,
                                                     save_top_k=-1)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=MAX_STEPS, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                        callbacks=[recorder, checkpoint])
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    with open(result_path, "w") as handle:
        json.dump({"rows": recorder.rows, "term_state": repr(module.term_state),
                   "params": {n: p.detach().flatten().tolist() for n, p in module.policy.named_parameters()}},
                  handle)


if __name__ == "__main__":
    main()
