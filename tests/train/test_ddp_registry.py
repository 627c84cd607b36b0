"""Two gloo ranks give the same update as one process, for every registered objective.

Batch-stage statistics (``batch_whiten``, ``group_mean_batch_std``, ``reinforce_pp``,
``mvar_advantage``, quantile trackers, ...) and mini-batch selections (``top_entropy_mask``,
``clip_cov``, ...) are taken over the global batch: the trainer gathers the rows of every rank.
The worker (``ddp_registry_worker.py``) runs each objective's update (2 PPO epochs) on rank-local
parts of one global batch; the weight changes must agree within 1e-9 (float64). Mini-batch
statistics that read the vocabulary (``siren``) cannot be gathered; they are additive over rows
and summed across ranks instead.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .pipeline_cases import NAMES

WORKER = Path(__file__).with_name("ddp_registry_worker.py")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = {}
    for world in (1, 2):
        path = tmp_path_factory.mktemp("ddp") / f"world{world}.pt"
        done = subprocess.run([sys.executable, str(WORKER), str(world), str(path), *NAMES], env=env,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out[world] = torch.load(path, weights_only=True)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_two_ranks_update_like_one_process(runs, name):
    one, two = runs[1][name], runs[2][name]
    assert "error" not in one, one.get("error")
    assert "error" not in two, two.get("error")
    gap = float((one["projections"] - two["projections"]).abs().max())
    assert float(one["norm"]) > 0 and gap <= 1e-9 * max(1.0, float(one["projections"].abs().max())), (name, gap)
