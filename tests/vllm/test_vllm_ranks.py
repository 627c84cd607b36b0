"""vLLM across data-parallel ranks: each of 2 DDP processes drives its own colocated engine
(vLLM's external launcher) and receives its rank's weight pushes."""

import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ranks_worker.py")
ATOL = 1e-4


def test_each_rank_drives_its_own_engine(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for r, row in enumerate(ranks):
        assert row["rank"] == r and row["world_size"] == 2 and row["rl_updates"] == 2
        assert row["executor"] == "external_launcher"
        assert row["difference"] < ATOL, row  # the rank's engine holds the rank's pushed weights
