"""The default run (rlobj/train/default_run.py): what ``build`` assembles from its arguments, and
``main`` end to end at a tiny size (a few steps), returning the before/after evaluation table."""

from rlobj.data.tasks import AdditionTask
from rlobj.train.callbacks import EvalTable, MetricPlots, ProgressPrinter
from rlobj.train.default_run import DEFAULTS, build, main


def test_build_assembles_the_documented_run(tmp_path):
    module, data, trainer = build(**{**DEFAULTS, "warmup_steps": 3, "rl_steps": 4, "group_size": 2},
                                  root=str(tmp_path))
    assert module.cfg.rollout.group_size == 2 and module.cfg.warmup.steps == 3
    assert module.cfg.warmup.lr == DEFAULTS["sft_lr"] and module.cfg.policy.logits == "auto"
    assert list(module.cfg.evaluation.k) == [1, 8] and module.cfg.evaluation.samples == 8
    assert trainer.max_steps == 7
    assert isinstance(data.train_source, AdditionTask) and data.prompts_per_step == DEFAULTS["prompts"]
    assert data.eval_size == DEFAULTS["eval_size"]
    kinds = {type(c) for c in trainer.callbacks}
    assert {ProgressPrinter, EvalTable, MetricPlots} <= kinds


def test_main_runs_a_tiny_schedule_and_returns_the_table(tmp_path, capsys):
    table = main(["--warmup-steps", "2", "--rl-steps", "2", "--prompts", "2", "--group-size", "2",
                  "--eval-size", "4", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "2 sft steps, then 2 GRPO steps x 2 prompts x 2 samples" in out
    assert "pass@1" in table and "pass@8" in table
    assert (tmp_path / "default_run").is_dir()
