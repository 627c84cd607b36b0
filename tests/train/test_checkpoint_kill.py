"""kill -9 in the middle of a checkpoint write: the run resumes from the last complete checkpoint
and ends exactly where the uninterrupted run ends (nothing lost)."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlobj.train.checkpoint_io import check_checkpoint_file, load_checkpoint_file

CHILD = Path(__file__).with_name("checkpoint_kill_child.py")


def _child(*args, **popen):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHILD.parents[2]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(CHILD), *map(str, args)], env=env, **popen)


@pytest.mark.slow
def test_kill_9_during_a_checkpoint_write_then_resume_loses_nothing(tmp_path):
    full = _child(tmp_path / "full", tmp_path / "full.json")
    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    # two writes per batch (its step checkpoint, then last.ckpt): the 5th write, batch 2's step
    # checkpoint (its first RL batch), stalls half-written and is killed
    victim = _child(killed_dir, tmp_path / "killed.json", "--stall-at-save", 5, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (killed_dir / "stalled").exists():
        assert victim.poll() is None, victim.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the child never reached the stalled write"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL
    stalled = (killed_dir / "stalled").read_text().strip()
    half_written = stalled.split()[0]
    assert os.path.getsize(half_written) > 0  # the interrupted write really left partial bytes

    checkpoints = sorted(glob.glob(str(killed_dir / "*.ckpt")))
    for path in checkpoints:  # every checkpoint the kill left in place is complete
        check_checkpoint_file(path, "ckpt_path")
    # the last complete checkpoint: the newest by its own global step
    last = max(checkpoints, key=lambda path: load_checkpoint_file(path)["global_step"])
    positions = {os.path.basename(p): load_checkpoint_file(p)["rlobj"]["data_position"] for p in checkpoints}
    print(f"killed during: {stalled}; complete checkpoints left (batches done): {positions}")
    assert max(positions.values()) == 2  # batches 0 and 1 were saved; batch 2's write was cut

    resumed = _child(tmp_path / "resumed", tmp_path / "resumed.json", "--resume", last)
    assert resumed.wait(timeout=300) == 0 and full.wait(timeout=300) == 0
    full_result = json.loads((tmp_path / "full.json").read_text())
    resumed_result = json.loads((tmp_path / "resumed.json").read_text())
    assert sorted(resumed_result["rows"]) == ["2", "3", "4"]  # redone from the last complete one
    for step in ("2", "3", "4"):
        for key, value in full_result["rows"][step].items():
            assert resumed_result["rows"][step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)
    assert resumed_result["term_state"] == full_result["term_state"]
    for name, values in full_result["params"].items():
        assert resumed_result["params"][name] == pytest.approx(values, abs=1e-6), name
    print(f"resumed from {os.path.basename(last)}: steps 2-4 redone, final parameters and metrics "
          f"equal the uninterrupted run's ({len(full_result['params'])} tensors)")
    if os.path.exists(half_written):
        os.remove(half_written)  # fsspec's temporary file of the interrupted write
