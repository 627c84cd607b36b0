"""Checkpoint loading: a crafted pickle is refused (never run), broken files are errors naming the
file and the fault, and rlobj's own checkpoint loads go through the weights-only loader."""

import os
import pathlib
import re

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.checkpoint_io import check_checkpoint_file, load_checkpoint_file
from rlobj.train.cli import RlobjTrainer

REPO = pathlib.Path(__file__).resolve().parents[2]


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.arange(4096.0)}, "global_step": 3}, path)
    return path


def test_a_valid_checkpoint_loads(good):
    checkpoint = load_checkpoint_file(str(good))
    assert checkpoint["global_step"] == 3 and checkpoint["state_dict"]["w"][-1] == 4095.0


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _Payload(str(marker))}, path)
    with pytest.raises(RlobjInputError, match=r"compare: checkpoint .*crafted\.ckpt.* allow-list"):
        load_checkpoint_file(str(path), "compare")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("empty", r"is empty \(0 bytes\)"),
        ("truncated", r"is truncated or not a torch checkpoint"),
        ("garbage", r"is truncated or not a torch checkpoint"),
        ("flipped", r"is corrupted: member .* fails its CRC check"),
    ],
)
def test_broken_checkpoints_name_the_file_and_the_fault(good, damage, expected):
    data = good.read_bytes()
    broken = good.with_name(f"{damage}.ckpt")
    if damage == "empty":
        broken.write_bytes(b"")
    elif damage == "truncated":
        broken.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        broken.write_bytes(os.urandom(2048))
    else:  # one byte of the tensor data changed; the archive's structure intact
        middle = data.index(torch.arange(4096.0)[2000:2001].numpy().tobytes())
        broken.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    pattern = rf"ckpt_path: checkpoint '{re.escape(str(broken))}'.*{expected}"
    with pytest.raises(RlobjInputError, match=pattern):
        load_checkpoint_file(str(broken), "ckpt_path")
    with pytest.raises(RlobjInputError, match=pattern):  # resuming a run checks the file first
        RlobjTrainer(logger=False, enable_progress_bar=False).fit(None, ckpt_path=str(broken))
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        check_checkpoint_file(str(broken) + ".missing", "ckpt_path")


def test_no_unsafe_torch_load_in_the_library():
    unsafe = [
        f"{path.relative_to(REPO)}:{number}"
        for path in (REPO / "rlobj").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "torch.load(" in line and "weights_only=True" not in line
    ]
    assert unsafe == []
