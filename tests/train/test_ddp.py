"""DDP on 2 CPU processes (gloo) gives the same update as one process on the same global batch."""

from pathlib import Path

import pytest
import torch

from ._helpers import run_worker

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(devices: int, out: Path) -> dict:
    return run_worker(WORKER, devices, out)


@pytest.mark.slow
def test_two_process_ddp_step_equals_one_process(tmp_path):
    single = _run(1, tmp_path / "single.pt")
    ddp = _run(2, tmp_path / "ddp.pt")
    assert single["world_size"] == 1 and ddp["world_size"] == 2
    # the two ranks hold different numbers of response tokens: the global normaliser matters
    assert len(ddp["tokens_per_rank"]) == 2 and ddp["tokens_per_rank"][0] != ddp["tokens_per_rank"][1]
    for aggregation in ("token_mean", "seq_mean_token_mean"):
        moved = 0.0
        for name, weight in single[aggregation].items():
            assert torch.allclose(ddp[aggregation][name], weight, atol=1e-6, rtol=1e-5), (aggregation, name)
            moved = max(moved, float((weight - ddp["token_mean" if aggregation != "token_mean" else "seq_mean_token_mean"][name]).abs().max()))
        assert moved > 1e-4  # the two aggregations really give different updates
