"""FSDP2 (fully_shard per decoder layer, Lightning's ModelParallelStrategy) on 2 CPU processes
(gloo) gives the same weights after 3 RL steps as one process on the same global batches, and a
sharded checkpoint resumes the same run."""

import sys
from pathlib import Path

import pytest
import torch

from ._helpers import run_worker

WORKER = Path(__file__).with_name("fsdp_worker.py")


def _run(devices: int, out: Path, *options: str) -> dict:
    return run_worker(WORKER, devices, out, *options, timeout=600)


@pytest.mark.slow
def test_fsdp2_two_processes_equal_one_process_after_three_rl_steps(tmp_path):
    single = _run(1, tmp_path / "single.pt")
    sharded = _run(2, tmp_path / "fsdp.pt")
    assert single["world_size"] == 1 and not single["sharded"]
    assert sharded["world_size"] == 2 and sharded["sharded"] and sharded["rl_updates"] == 3
    moved = 0.0
    for name, weight in single["weights"].items():
        other = sharded["weights"][name]
        assert torch.allclose(other, weight, atol=2e-5, rtol=0), (name, float((other - weight).abs().max()))
    init = _initial_weights()
    moved = max(float((w - init[n]).abs().max()) for n, w in single["weights"].items())
    assert moved > 1e-4  # three AdamW steps moved the weights
    # a sharded checkpoint after step 2 resumes the same run: weights, AdamW state, the sharded
    # reference (saved as full tensors) and the run state come back; the third step is identical
    _run(2, tmp_path / "two_steps.pt", "--steps", "2", "--save-to", str(tmp_path / "ck"))
    checkpoint = tmp_path / "ck" / "epoch=0-step=2.ckpt"
    assert checkpoint.is_dir() and len(list(checkpoint.glob("*.distcp"))) == 2  # one shard file per rank
    resumed = _run(2, tmp_path / "resumed.pt", "--steps", "3", "--resume", str(checkpoint))
    assert resumed["rl_updates"] == 3
    for name, weight in sharded["weights"].items():
        assert torch.equal(resumed["weights"][name], weight), name


def _initial_weights() -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from _helpers import tiny_module

    module = tiny_module(policy={"tiny_model": {"hidden_size": 64, "layers": 2, "heads": 2, "seed": 0}})
    return {n: p.detach() for n, p in module.policy.named_parameters()}
