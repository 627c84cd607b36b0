"""``rlobj fit`` with a data strategy on 2 gloo ranks: both ranks end with identical per-prompt
statistics and strategy state and choose the same prompts at every step; each trains on its slice."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

WORKER = Path(__file__).with_name("ddp_fit_worker.py")


@pytest.mark.slow
def test_two_ranks_keep_identical_statistics_and_choose_the_same_prompts(tmp_path):
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "max_steps": 4, "limit_val_batches": 0,
                    "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "enable_checkpointing": False, "default_root_dir": str(tmp_path),
                    "callbacks": [{"class_path": "train.test_data_loops_fit.Recorder"}]},
        "model": {"policy": {"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 0}},
                  "rollout": {"group_size": 4, "max_new_tokens": 4}, "warmup": {"steps": 0, "eval_at_end": False},
                  "verifier": {"class_path": "train._helpers.StartsWithDigit"}, "seed": 0},
        "data": {"train": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 1}},
                 "eval": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 2}},
                 "prompts_per_step": 2, "eval_size": 2, "stats_window": 4,
                 "strategy": {"class_path": "rlobj.train.data_strategies.HardFocus",
                              "init_args": {"hard_fraction": 0.5, "retire_at": 1.0}}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(WORKER), str(path), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    zero, one = ranks
    assert zero["state"] == one["state"]  # PromptStats and HardFocus's pool, identical on both ranks
    assert sorted(zero["selections"]) == [0, 1, 2, 3] and zero["selections"] == one["selections"]
    stats = zero["state"]["stats"]["entries"]
    # every rank's rows reached the statistics: 4 steps x 4 prompts (2 per rank) x 4 samples
    assert sum(entry["attempts"] for entry in stats.values()) == 4 * 4 * 4
    # hard prompts were revisited (ids below the step's fresh range), the same on both ranks
    assert any(int(pid) < 4 * step for step, chosen in zero["selections"].items() for pid in chosen)
    # each rank trained on its own half of the last selection
    last = zero["selections"][3]
    assert sorted(set(zero["trained"])) == sorted(set(last[:2])) and sorted(set(one["trained"])) == sorted(set(last[2:]))
