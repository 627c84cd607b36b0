"""Every bad config stops ``rlobj fit`` before a model loads, with the key and the cause."""

import json
from pathlib import Path

import pytest

from rlobj.train.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = str(ROOT / "examples" / "configs" / "default.yaml")


@pytest.fixture
def no_model(monkeypatch):
    """Building or loading a model is the failure: the config must be rejected before."""
    import transformers

    import rlobj.rollout

    def forbidden(*args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("a model was built before the config was validated")

    monkeypatch.setattr(rlobj.rollout, "build_tiny_qwen2", forbidden)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", forbidden)


def _fails_on_data(tmp_path, content, args, capsys, section="train") -> tuple[str, Path]:
    """Run ``fit`` with ``data.<section>`` a DatasetTask of a JSONL file holding ``content``."""
    data = tmp_path / f"{section}.jsonl"
    data.write_text(content)
    return _fails([f"--data.{section}.class_path=rlobj.train.DatasetTask",
                   f"--data.{section}.init_args.path={data}", *args], capsys), data


def _fails(args, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", DEFAULT, *args])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    message = (captured.err + captured.out).strip().splitlines()
    print("\n".join(message[-2:]))
    return captured.err + captured.out


@pytest.mark.parametrize("override, expected", [
    ("--model.rollout.max_new_tokens=many", 'Parser key "model.rollout.max_new_tokens":\n  Expected a <class \'int\'>. Got value: many'),
    ("--model.rollout.temperature=fast", 'Parser key "model.rollout.temperature":\n  Expected a <class \'float\'>. Got value: fast'),
    ("--data.eval_size=ten", 'Parser key "data.eval_size":\n  Expected a <class \'int\'>. Got value: ten'),
])
def test_wrong_argument_type_names_the_argument_and_type(override, expected, capsys, no_model):
    assert expected in _fails([override], capsys)


def test_unknown_verifier_class_shows_the_import_error(capsys, no_model):
    err = _fails(["--model.verifier.class_path=rlobj.train.ExactAnswr"], capsys)
    assert ("invalid configuration: model.verifier.class_path: cannot import 'rlobj.train.ExactAnswr' "
            "(AttributeError: module 'rlobj.train' has no attribute 'ExactAnswr')") in err
    assert "NestedArg" not in err
    err = _fails(["--model.verifier.class_path=mypkg_that_is_not_there.Verifier"], capsys)
    assert "cannot import 'mypkg_that_is_not_there.Verifier' (ModuleNotFoundError: No module named" in err


def test_unknown_callback_class_names_the_key_and_import_error(capsys, no_model, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("trainer:\n  callbacks:\n    - class_path: rlobj.train.ProgresPrinter\n")
    err = _fails(["--config", str(config)], capsys)
    assert 'Parser key "trainer.callbacks"' in err
    assert "Problem with given class_path 'rlobj.train.ProgresPrinter':\n        module 'rlobj.train' has no attribute" in err


def test_unknown_reward_function_names_it(capsys, no_model, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  scorer:\n    class_path: rlobj.train.RewardFunctions\n"
                      "    init_args:\n      funcs: [rlobj.data.tasks.no_such_reward]\n")
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(config)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert ("invalid configuration: model.scorer.init_args.funcs[0]: cannot import 'rlobj.data.tasks.no_such_reward' (AttributeError: "
            "module 'rlobj.data.tasks' has no attribute 'no_such_reward')") in err


@pytest.mark.parametrize("content, expected", [
    ('{"question": "1+1", "answer": "2"}\n{"question": "2+2" "answer": "4"}\n',
     "train.jsonl:2: not valid JSON (Expecting ',' delimiter, column 20)"),
    ('{"question": "1+1", "answer": "2"}\n["a list"]\n', "train.jsonl:2: expected a JSON object per line, got list"),
    ('{"text": "1+1", "answer": "2"}\n',
     "DatasetTask.columns: '{path}' has no column prompt / question / problem / messages for the prompt; "
     "columns present: ['text', 'answer']"),
])
def test_malformed_data_file_names_file_line_and_reason(content, expected, capsys, no_model, tmp_path):
    err, data = _fails_on_data(tmp_path, content, [], capsys)
    assert "invalid configuration: DatasetTask" in err
    assert expected.format(path=data) in err


def test_missing_column_named_in_the_mapping(capsys, no_model, tmp_path):
    err, data = _fails_on_data(tmp_path, json.dumps({"q": "1+1", "a": "2"}) + "\n",
                               ["--data.train.init_args.columns={prompt: q, answer: final}"], capsys)
    assert f"DatasetTask.columns.answer: '{data}' has no column final for the answer; columns present: ['q', 'a']" in err


@pytest.mark.parametrize("path, expected", [
    ("/nonexistent/model", "model.policy.model_path: no such model directory '/nonexistent/model'"),
    ("nobody/not-a-cached-model", "model.policy.model_path: 'nobody/not-a-cached-model' is not a local directory and not in "
                                  "the local Hugging Face cache (HF_HUB_OFFLINE=1"),
])
def test_missing_model_path(path, expected, capsys, no_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert expected in _fails([f"--model.policy.model_path={path}"], capsys)


def test_model_path_without_config_json(capsys, no_model, tmp_path):
    assert f"model.policy.model_path: '{tmp_path}' has no config.json" in _fails([f"--model.policy.model_path={tmp_path}"], capsys)


def test_eval_size_larger_than_the_data(capsys, no_model, tmp_path):
    rows = "".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(3))
    err, _ = _fails_on_data(tmp_path, rows, ["--data.eval_size=5"], capsys, section="eval")
    assert "eval_size: 5 is larger than the evaluation data (3 rows in DatasetTask(" in err
    assert "set eval_size <= 3" in err


def test_unknown_split_names_the_split(capsys, no_model, tmp_path):
    err, data = _fails_on_data(tmp_path, json.dumps({"question": "1+1", "answer": "2"}) + "\n",
                               ["--data.train.init_args.split=validation"], capsys)
    assert f"DatasetTask.split: cannot take split 'validation' of '{data}'" in err


def test_the_cli_does_not_force_hub_offline(monkeypatch, capsys):
    import os

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(SystemExit):
        main(["fit", "--config", DEFAULT, "--print_config"])
    assert "HF_HUB_OFFLINE" not in os.environ  # users with a hub keep it; tests and CI set it themselves


@pytest.mark.parametrize("yaml, expected", [
    ("model:\n  scorer:\n    class_path: rlobj.train.RewardFunctions\n    init_args:\n"
     "      funcs: [rlobj.ops.tokenizer.unknown_characters]\n      weights: [1.0, 2.0]\n",
     "invalid configuration: model.scorer: weights: 2 weights for 1 reward functions"),
    ("model:\n  verifier:\n    class_path: rlobj.train.ExactAnswer\n    init_args: {answer_kye: x}\n",
     "invalid configuration: verifier.init_args: ExactAnswer.__init__() got an unexpected keyword argument "
     "'answer_kye'"),
])
def test_error_inside_a_class_path_object_is_reported_under_its_key(yaml, expected, capsys, no_model, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(config)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "scorer.class_path" not in err
