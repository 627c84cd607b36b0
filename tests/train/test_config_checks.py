"""Checks of a parsed configuration before anything is built (rlobj/train/config_checks.py): class
paths and reward functions that do not import, model paths that are not model directories or cached
Hub ids, each reported as one line naming the key; the first problem wins."""

from rlobj.train.config_checks import check_class_path, check_config, check_model_path


def test_class_paths():
    assert check_class_path("model.verifier.class_path", "rlobj.data.tasks.ExactAnswer") is None
    assert check_class_path("model.verifier.class_path", "rlobj.data.tasks.ExactAnswr") == (
        "model.verifier.class_path: cannot import 'rlobj.data.tasks.ExactAnswr' "
        "(AttributeError: module 'rlobj.data.tasks' has no attribute 'ExactAnswr')")
    assert check_class_path("k", "Verifier") == "k: 'Verifier' is not a dotted import path (package.module.Name)"


def test_model_paths(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    assert check_model_path("policy.model_path", str(model)) == (
        f"policy.model_path: {str(model)!r} has no config.json (not a Hugging Face model directory)")
    (model / "config.json").write_text("{}")
    assert check_model_path("policy.model_path", str(model)) is None
    assert check_model_path("k", str(model / "config.json")).endswith(
        "is a file; expected a model directory or a Hub model id")
    assert check_model_path("k", str(tmp_path / "missing")) == f"k: no such model directory {str(tmp_path / 'missing')!r}"
    assert check_model_path("k", "./relative/dir") == "k: no such model directory './relative/dir'"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    problem = check_model_path("k", "no-such-org/no-such-model")
    assert problem.startswith("k: 'no-such-org/no-such-model' is not a local directory and not in the local "
                              "Hugging Face cache (HF_HUB_OFFLINE=1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert check_model_path("k", "no-such-org/no-such-model") is None  # online: the download decides


def test_check_config_walks_nested_configs_and_returns_the_first_problem(tmp_path):
    good = {"model": {"verifier": {"class_path": "rlobj.data.tasks.ExactAnswer"},
                      "scorer": {"class_path": "rlobj.train.scorers.RewardFunctions",
                                 "init_args": {"funcs": ["math.sqrt", "math.floor"]}}},
            "data": [{"class_path": "rlobj.data.tasks.AdditionTask"}]}
    assert check_config(good) is None
    bad_func = {"model": {"scorer": {"init_args": {"funcs": ["math.sqrt", "math.nope"]}}}}
    assert check_config(bad_func).startswith("model.scorer.init_args.funcs[1]: cannot import 'math.nope'")
    two = {"a": {"class_path": "math.Nope1"}, "b": {"model_path": str(tmp_path / "none")}}
    assert check_config(two).startswith("a.class_path: cannot import 'math.Nope1'")
    assert check_config({"b": [{"model_path": str(tmp_path / "none")}]}) == \
        f"b[0].model_path: no such model directory {str(tmp_path / 'none')!r}"
