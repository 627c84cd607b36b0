"""``rlobj eval``: per-problem (n, c) counts to JSON, --compare (checkpoint or counts file), CoT judge,
pass@k plot."""

import glob
import json
import os
from pathlib import Path

import pytest

from rlobj.eval import pass_at_k
from rlobj.ops.errors import RlobjInputError
from rlobj.train import AdditionTask, RLDataModule
from rlobj.train.cli import RlobjTrainer, main

from ._helpers import tiny_module

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = str(ROOT / "examples/configs/default.yaml")


class LastDigitOdd:
    """A verifier with mixed verdicts on an untrained model: the completion ends in an odd digit."""

    def __call__(self, completion, sample):
        text = completion.strip()
        return float(bool(text) and text[-1] in "13579")


def _module():
    return tiny_module(verifier=LastDigitOdd(), evaluation=dict(samples=4, k=[1, 2, 4]), rollout=dict(max_new_tokens=3))


def _data(size=6):
    return RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=2,
                        eval_size=size)


def _trainer():
    return RlobjTrainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)


def test_counts_json_matches_the_metrics(tmp_path, capsys):
    path = tmp_path / "out" / "counts.json"
    report = _trainer().eval(_module(), _data(), counts_path=str(path))
    payload = json.loads(path.read_text())
    counts = {k: tuple(v) for k, v in payload["counts"].items()}
    assert counts == report["counts"] and len(counts) == 6 and payload["eval_samples"] == 4
    records = _data().eval_records()
    assert list(counts) == [f"{i}: {r['prompt']}" for i, r in enumerate(records)]
    assert payload["prompts"][f"0: {records[0]['prompt']}"] == records[0]["prompt"]
    assert all(n == 4 and 0 <= c <= 4 for n, c in counts.values())
    assert 0 < sum(c for _, c in counts.values()) < 24, "the verifier should give mixed verdicts"
    # the reported pass@k is the mean of the per-problem unbiased estimates of these counts
    for k in (1, 2, 4):
        expected = sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
        assert payload["metrics"][f"pass@{k}"] == pytest.approx(expected, abs=1e-12)
    assert payload["metrics"]["pass@1"] == pytest.approx(sum(c for _, c in counts.values()) / 24)
    assert "pass@4" in capsys.readouterr().out


def test_cot_judge_bounds_and_extremes(tmp_path):
    from rlobj.eval import RuleCotJudge

    module, data = _module(), _data()
    accept_all = RuleCotJudge(min_reasoning_chars=0, answer_pattern=r"^(.*)$", check_arithmetic=False)
    report = _trainer().eval(module, data, cot_judge=accept_all)
    for k in (1, 2, 4):  # every correct answer's reasoning accepted: CoT-pass@k = pass@k
        assert report["metrics"][f"cot_pass@{k}"] == pytest.approx(report["metrics"][f"pass@{k}"])
    path = tmp_path / "c.json"
    report = _trainer().eval(module, data, cot_judge=RuleCotJudge(), counts_path=str(path))
    # bare digits hold no \boxed{} answer and no reasoning: the default rules reject them all
    assert all(report["metrics"][f"cot_pass@{k}"] == 0.0 for k in (1, 2, 4))
    assert report["metrics"]["pass@4"] > 0
    assert all(d == 0 for _, d in json.loads(path.read_text())["cot_counts"].values())
    with pytest.raises(RlobjInputError, match="cot_judge"):
        _trainer().eval(module, data, cot_judge="not a judge")


def test_compare_with_a_counts_file_and_plot(tmp_path, capsys):
    module, data = _module(), _data()
    first = tmp_path / "base.json"
    _trainer().eval(module, data, counts_path=str(first))
    # a hand-made "other model": solves problem 0 four times, nothing else
    keys = list(json.loads(first.read_text())["counts"])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({key: [4, 4 if i == 0 else 0] for i, key in enumerate(keys)}))
    plot = tmp_path / "plots" / "passk.png"
    report = _trainer().eval(module, data, compare=str(other), plot=str(plot))
    comparison = report["comparison"]
    this = report["counts"]
    expected_shrinkage = sum(1 for i, key in enumerate(keys) if i == 0 and this[key][1] == 0)
    expected_expansion = sum(1 for i, key in enumerate(keys) if i > 0 and this[key][1] > 0)
    assert comparison.counts["shrinkage"] == expected_shrinkage
    assert comparison.counts["expansion"] == expected_expansion
    # the bare mapping's row is computed from its counts: pass@1 = 4 / 24
    assert report["compare_metrics"]["pass@1"] == pytest.approx(4 / 24)
    out = capsys.readouterr().out
    assert "support: preserved" in out and "other.json" in out and "change" in out
    assert plot.is_file() and plot.stat().st_size > 1000 and report["plot"] == str(plot)
    # comparing with its own counts file: every problem keeps its solve rate
    same = _trainer().eval(module, data, compare=str(first))["comparison"]
    assert same.counts["same"] == 6 and same.counts["shrinkage"] == same.counts["expansion"] == 0


def test_compare_errors_name_the_argument(tmp_path):
    module, data = _module(), _data()
    with pytest.raises(FileNotFoundError, match="compare"):
        _trainer().eval(module, data, compare=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"counts": {"0: 1+1=": [4, 5]}}))
    with pytest.raises(RlobjInputError, match="compare: .*0 <= c <= n"):
        _trainer().eval(module, data, compare=str(bad))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"counts": {"0: 1+1=": [4, 1]}}))
    with pytest.raises(RlobjInputError, match="compare: .*same problems"):
        _trainer().eval(module, data, compare=str(other))
    with pytest.raises(RlobjInputError, match="min_correct"):
        _trainer().eval(module, data, min_correct=0)


@pytest.mark.slow
def test_eval_command_compares_two_checkpoints(tmp_path, monkeypatch, capsys):
    """CLI wiring: fit writes checkpoints; ``rlobj eval`` with every flag, the judge from YAML."""
    monkeypatch.chdir(tmp_path)
    small = ["--data.eval_size=3", "--model.evaluation.samples=4", "--model.evaluation.k=[1, 4]",
             "--trainer.logger=false"]
    main(["fit", "--config", DEFAULT, "--trainer.max_steps=2", "--model.warmup.steps=2",
          "--data.prompts_per_step=2", "--trainer.enable_checkpointing=true", "--trainer.callbacks=[]",
          "--trainer.default_root_dir=ck", *small])
    (checkpoint,) = glob.glob(str(tmp_path / "ck" / "**" / "*.ckpt"), recursive=True)
    judge = tmp_path / "judge.yaml"
    judge.write_text("cot_judge:\n  class_path: rlobj.eval.RuleCotJudge\n  init_args: {min_reasoning_chars: 0}\n")
    capsys.readouterr()
    main(["eval", "--config", DEFAULT, "--config", str(judge), *small, "--counts_path=base.json",
          "--plot=passk.png"])
    main(["eval", "--config", DEFAULT, *small, f"--ckpt_path={checkpoint}", "--compare=base.json",
          "--counts_path=trained.json"])
    out = capsys.readouterr().out
    assert "cot_pass@1" in out and "support: preserved" in out and os.path.basename(checkpoint) in out
    base, trained = (json.loads((tmp_path / f).read_text()) for f in ("base.json", "trained.json"))
    assert base["label"] == "model" and trained["label"] == os.path.basename(checkpoint)
    assert list(base["counts"]) == list(trained["counts"]) and "cot_counts" in base
    assert (tmp_path / "passk.png").stat().st_size > 1000
    # a checkpoint as --compare is evaluated on the same problems with the same seeds
    main(["eval", "--config", DEFAULT, *small, f"--ckpt_path={checkpoint}", f"--compare={checkpoint}"])
    out = capsys.readouterr().out
    assert "(compare)" in out and "improved 0, worse 0, same 3" in out
