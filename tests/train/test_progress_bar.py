"""``rlobj fit`` shows Lightning's rich progress bar on a terminal and plain lines in logs."""

from pathlib import Path

import pytest

from rlobj.train import callbacks

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["fit", "--config", str(ROOT / "examples/configs/default.yaml"), "--trainer.max_steps=2",
        "--model.warmup.steps=1", "--data.prompts_per_step=2", "--data.eval_size=2", "--model.evaluation.samples=2",
        "--model.evaluation.k=[1, 2]", "--trainer.logger=false",
        "--trainer.callbacks=[{class_path: rlobj.train.ProgressPrinter, init_args: {every: 1}}]"]


@pytest.mark.parametrize("terminal", [True, False])
def test_rich_bar_on_a_terminal_plain_lines_in_logs(terminal, monkeypatch, tmp_path, capsys):
    from lightning.pytorch.callbacks import RichProgressBar

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(callbacks, "is_terminal", lambda: terminal)
    cli = main_cli(ARGS)
    out = capsys.readouterr().out
    if terminal:
        assert isinstance(cli.trainer.progress_bar_callback, RichProgressBar)
        assert "[sft] step" not in out  # the bar shows the run; the printer stays quiet
    else:
        assert cli.trainer.progress_bar_callback is None
        assert "[sft] step    1" in out and "[rl ] step    2" in out


def test_an_explicit_setting_wins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(callbacks, "is_terminal", lambda: True)
    assert main_cli([*ARGS, "--trainer.enable_progress_bar=false"]).trainer.progress_bar_callback is None


def main_cli(args):
    from rlobj.train.cli import run

    return run(args)
