"""User code from YAML: a term, a provider and a transform by dotted path; the saved config re-runs."""

import math
from pathlib import Path

import pytest
import yaml

from rlobj.ops.errors import RlobjInputError
from rlobj.registry import build_objective, to_config
from rlobj.train.cli import run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_package(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "user_code"))


def _short(config: dict, root: Path) -> dict:
    config = dict(config)
    config["trainer"] = {**config["trainer"], "max_steps": 2, "logger": False, "callbacks": None,
                         "default_root_dir": str(root)}
    config["model"] = {**config["model"], "warmup": {"steps": 0, "eval_at_end": False},
                       "verifier": {"class_path": "train._helpers.StartsWithDigit"}}
    config["data"] = {**config["data"], "prompts_per_step": 4, "eval_size": 4}
    return config


def test_example_config_trains_and_its_saved_config_reruns(user_package, tmp_path):
    config = yaml.safe_load((ROOT / "examples/configs/user_code.yaml").read_text())
    first = tmp_path / "first"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_short(config, first)))
    cli = run(["fit", "--config", str(path)])
    module = cli.model
    assert type(module.objective.chain.terms[0]).__module__ == "my_rlobj_ext.terms"
    assert any(type(p).__name__ == "CharLengths" for p in module.providers)
    assert type(module.transforms[0]).__name__ == "DropAllTruncated"
    metrics = module.last_metrics
    assert math.isfinite(metrics["loss"]) and metrics["length_cost/chars_mean"] > 0
    assert "drop_all_truncated/groups" in metrics
    saved = first / "config.yaml"
    assert saved.exists()
    again = run(["fit", "--config", str(saved), f"--trainer.default_root_dir={tmp_path / 'second'}"])
    assert math.isfinite(again.model.last_metrics["loss"])
    assert again.model.objective.chain == module.objective.chain


def test_dotted_terms_round_trip_through_to_config(user_package):
    chain = build_objective([{"my_rlobj_ext.terms.length_cost": {"coef": 0.5}}, "grpo"])
    config = to_config(chain)
    assert next(iter(config[0])) == "my_rlobj_ext.terms.length_cost"
    assert build_objective(config) == chain


@pytest.mark.parametrize("spec, match", [
    ([{"my_rlobj_ext.terms.nope": {}}], "cannot import"),
    ([{"my_rlobj_ext.providers.CharLengths": {}}], "expected a Term subclass"),
    ([{"my_rlobj_ext.terms.length_cost": {"spam": 1}}], "length_cost: .*spam"),
])
def test_bad_dotted_terms_name_the_problem(user_package, spec, match):
    with pytest.raises(RlobjInputError, match=match):
        build_objective(spec)
