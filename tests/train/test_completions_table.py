"""The completions table (prompt, completion, reward, advantage) in CSV and in real loggers."""

import csv
import os

import pytest

from rlobj.train import CompletionsTable, ProgressPrinter
from rlobj.train.callbacks import ZERO_LOSS_NOTE, log_table

from ._table_fit import fit_with_table


def _read(path):
    with open(path) as handle:
        return list(csv.reader(handle))


def test_csv_and_tensorboard_tables(tmp_path, capsys):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(str(tmp_path), name="tb")
    module, table = fit_with_table(tmp_path, logger)
    rows = _read(table.path)
    print("\n".join(",".join(r) for r in rows))
    assert rows[0] == ["step", "prompt", "completion", "reward", "advantage"]
    assert [r[0] for r in rows[1:]] == ["2", "2", "2", "4", "4", "4"] and table.logged_steps == [2, 4]
    assert all(r[1].endswith("=") and float(r[3]) in (0.0, 1.0) for r in rows[1:])
    # rewards and advantages are the batch's: a group's advantages are centred rewards
    batch, prepared = module.last_batch
    assert [float(r[3]) for r in rows[-3:]] == [s.reward for s in batch.scores[:3]]
    events = EventAccumulator(logger.log_dir, size_guidance={"tensors": 0})
    events.Reload()
    texts = events.Tensors("completions/text_summary")
    assert [t.step for t in texts] == [2, 4]
    markdown = texts[-1].tensor_proto.string_val[0].decode()
    assert markdown.startswith("| prompt | completion | reward | advantage |") and markdown.count("\n") == 4
    out = capsys.readouterr().out
    assert "grad_norm" in out


def test_zero_loss_is_explained_once(tmp_path, capsys):
    fit_with_table(tmp_path, False, steps=4)
    out = capsys.readouterr().out
    rl_lines = [line for line in out.splitlines() if line.startswith("[rl ]")]
    assert len(rl_lines) == 3 and all("grad_norm" in line for line in rl_lines)
    assert out.count(ZERO_LOSS_NOTE) == (1 if any("loss +0.0000" in x or "loss -0.0000" in x for x in rl_lines) else 0)


def test_log_table_on_a_logger_without_tables(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    assert log_table(CSVLogger(str(tmp_path)), "completions", ["a"], [[1]], 1) is False


def test_bad_arguments():
    with pytest.raises(ValueError, match="every: expected an int >= 1"):
        CompletionsTable(every=0)
    with pytest.raises(ValueError, match="every: expected an int >= 1"):
        ProgressPrinter(every=0)
    assert os.path.basename(CompletionsTable().filename) == "completions.csv"
