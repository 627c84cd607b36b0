"""A run killed mid-training and resumed from its last checkpoint continues exactly."""

import functools
import glob

import lightning as L
import pytest
import torch

from rlobj.train import AdditionTask, RLDataModule, RLModule, WarmupSchedule

from ._kill import Kill

OBJECTIVE = ["group_zscore", {"clip_ratio": {"eps_high": 0.28}}, "token_mean",
             {"adaptive_entropy": {"target": 5.0, "init_coef": 0.0, "step": 0.01}}]  # stateful term


class Recorder(L.Callback):
    def __init__(self):
        self.rows = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows[int(batch["step"])] = {k: v for k, v in pl_module.last_metrics.items()
                                         if not k.startswith(("time/", "throughput/"))}


def _run(root, max_steps, callbacks, ckpt_path=None):
    torch.manual_seed(123)
    module = RLModule(objective=OBJECTIVE, policy={"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
                      rollout={"group_size": 4, "max_new_tokens": 4}, warmup={"steps": 2},
                      update={"ppo_epochs": 2, "mini_batch_size": 8, "shuffle_minibatches": True},
                      optimizer=functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.0), evaluation={"samples": 2, "k": [1]},
                      lr_scheduler=functools.partial(WarmupSchedule, warmup_steps=3), seed=3)
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=4, eval_size=2)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=root, save_last=True, every_n_train_steps=1)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                        callbacks=[*callbacks, checkpoint])
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module, trainer


@pytest.mark.slow
def test_killed_and_resumed_run_matches_the_uninterrupted_run(tmp_path):
    # 2 sft batches (1 update each) + 3 RL batches (2 epochs x 2 mini-batches = 4 updates each)
    max_steps = 2 + 3 * 4
    full = Recorder()
    module_full, _ = _run(tmp_path / "full", max_steps, [full])
    assert sorted(full.rows) == [0, 1, 2, 3, 4]

    first = Recorder()
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        _run(tmp_path / "killed", max_steps, [first, Kill(at_step=3)])
    last = glob.glob(str(tmp_path / "killed" / "last*.ckpt"))
    assert last, "no checkpoint was written before the kill"
    resumed = Recorder()
    module_resumed, _ = _run(tmp_path / "resumed", max_steps, [resumed], ckpt_path=last[0])
    # the kill hit batch 3 before its checkpoint: the last checkpoint is after batch 2
    assert sorted(resumed.rows) == [3, 4]
    for step in (3, 4):
        assert resumed.rows[step].keys() == full.rows[step].keys()
        for key, value in full.rows[step].items():
            assert resumed.rows[step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)
    assert module_resumed.term_state == pytest.approx(module_full.term_state)
    assert module_resumed.eval_history == module_full.eval_history
    for (name, a), (_, b) in zip(module_full.policy.named_parameters(), module_resumed.policy.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


