import csv
import glob
import os

import lightning as L

from rlobj.train import (
    AdditionTask,
    EvalTable,
    MetricPlots,
    ProgressPrinter,
    RLDataModule,
    RLModule,
)


def test_fit_sft_then_rl_logs_metrics_plots_and_table(tmp_path, capsys):
    module = RLModule(policy=dict(tiny_model={"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}),
                      rollout=dict(group_size=4, max_new_tokens=4), warmup=dict(steps=2), evaluation=dict(samples=2, k=[1, 2]))
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=4, eval_size=4)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=4, limit_val_batches=0,
                        logger=L.pytorch.loggers.CSVLogger(tmp_path, name="t"), enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=1,
                        callbacks=[ProgressPrinter(every=1), EvalTable(), MetricPlots()])
    trainer.fit(module, datamodule=data)
    out = capsys.readouterr().out
    assert "[sft] step    1" in out and "[rl ] step    4" in out
    assert "before RL" in out and "after RL" in out and "pass@1" in out
    assert module.rl_updates == 2 and module.data_position == 4
    rows = list(csv.DictReader(open(glob.glob(str(tmp_path / "t" / "*" / "metrics.csv"))[0])))
    keys = set().union(*(r.keys() for r in rows))
    for key in ("loss/sft", "sft/nll", "loss/policy", "clip_frac", "reward/mean", "reward/std", "pass_rate",
                "entropy", "kl/old_k3", "mismatch/logp_abs", "response/length_mean",
                "throughput/generate_tokens_per_s", "throughput/update_tokens_per_s", "eval/pass@1"):
        assert key in keys, key
    # each row carries only its own step's values: no SFT loss on RL rows, no reward on SFT rows
    steps = [r for r in rows if r.get("phase")]
    assert [r["phase"] for r in steps] == ["0.0", "0.0", "1.0", "1.0"]
    assert all(r["loss/sft"] and r["sft/nll"] and not r["reward/mean"] for r in steps[:2])
    assert all(not r["loss/sft"] and not r["sft/nll"] and r["reward/mean"] for r in steps[2:])
    assert os.path.getsize(glob.glob(str(tmp_path / "t" / "*" / "metrics.png"))[0]) > 1000
    assert os.path.exists(glob.glob(str(tmp_path / "t" / "*" / "eval_table.txt"))[0])
