"""docs/training-pipeline.md: the contract blocks are the code's own lines, and the worked example
(a term, the provider of its new input and the YAML) runs: its values are right and
``rlobj fit`` trains two RL steps of the tiny model with it."""

import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from rlobj.ops.errors import RlobjInputError

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "training-pipeline.md"
FENCE = re.compile(r'^```(\w+)(?: title="([^"]*)")?\n(.*?)^```$', re.M | re.S)


def _blocks() -> list[tuple[str, str, str]]:
    """``(language, title, code)`` of every fenced block of the page."""
    return [(m.group(1), m.group(2) or "", m.group(3)) for m in FENCE.finditer(PAGE.read_text(encoding="utf-8"))]


def _block(title: str) -> str:
    found = [code for _, name, code in _blocks() if name == title]
    assert len(found) == 1, f"docs/training-pipeline.md: expected one block titled {title!r}, found {len(found)}"
    return found[0]


def _normal(line: str) -> str:
    """A line without indentation, trailing comment or the page's ``...`` body."""
    line = line.split("  #", 1)[0].strip()
    return line.removesuffix("...").strip()


def test_contract_blocks_are_lines_of_the_named_source_file():
    contracts = [(title, code) for lang, title, code in _blocks() if lang == "python" and title.startswith("rlobj/")]
    assert {title for title, _ in contracts} >= {"rlobj/train/stages.py", "rlobj/train/providers/base.py",
                                                 "rlobj/train/update.py", "rlobj/train/sync.py"}
    problems = []
    for title, code in contracts:
        source = {_normal(line) for line in (REPO / title).read_text(encoding="utf-8").splitlines()}
        for line in code.splitlines():
            if _normal(line) and _normal(line) not in source:
                problems.append(f"{title}: {line.strip()!r}")
    assert not problems, "docs/training-pipeline.md shows lines that are not in the code:\n" + "\n".join(problems)


def test_every_stage_key_and_transform_name_on_the_page_exists():
    from rlobj.train.samplers import SAMPLERS
    from rlobj.train.transforms import TRANSFORMS

    text = PAGE.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+)`", text, flags=re.M))
    assert set(SAMPLERS) <= rows and set(TRANSFORMS) <= rows, "a sampler or transform is missing from the tables"
    unknown = rows - set(SAMPLERS) - set(TRANSFORMS) - {"term_state", "data_position", "rl_updates", "eval_history",
                                                       "rng", "reference", "sampler", "transforms",
                                                       "data_loop"}
    assert not unknown, f"table rows naming nothing that exists: {sorted(unknown)}"


@pytest.fixture
def my_ext(tmp_path, monkeypatch):
    """The page's ``my_ext.py`` written to a folder on ``sys.path`` and imported."""
    import importlib
    import sys

    (tmp_path / "my_ext.py").write_text(_block("my_ext.py"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_ext", None)
    yield importlib.import_module("my_ext")
    sys.modules.pop("my_ext", None)


def test_worked_example_is_under_30_lines():
    lines = len(_block("my_ext.py").splitlines()) + len(_block("my_ext.yaml").splitlines())
    assert lines < 30, f"the worked example (term + provider + YAML) has {lines} lines"


def test_worked_example_provider_and_term_give_the_values_the_page_says(my_ext):
    from train._helpers import synthetic_rollout, tiny_module

    model = yaml.safe_load(_block("my_ext.yaml"))["model"]
    module = tiny_module(objective=model["objective"], providers=model["providers"])
    assert any(isinstance(p, my_ext.Repeats) for p in module.providers)
    rollout = synthetic_rollout(module)
    ids, mask = rollout.response_ids.tolist(), rollout.response_mask.tolist()
    expected = [sum(1 for t in range(1, len(row)) if m[t] and row[t] == row[t - 1]) for row, m in zip(ids, mask)]
    batch_rows = torch.tensor(expected, dtype=torch.float32)
    rewards = torch.tensor([1.0, 0.0] * (len(rollout) // 2))
    metrics = module.update_on_rollout(rollout, rewards)
    assert math.isfinite(metrics["loss"])
    assert metrics["repetition_cost/repeats_mean"] == pytest.approx(float(batch_rows.mean()))
    # without the providers: line the module refuses to build, naming the term and the slot
    with pytest.raises(RlobjInputError, match=r"repetition_cost reads 'extras:repeats'"):
        tiny_module(objective=model["objective"])


def test_worked_example_trains_two_rl_steps_with_rlobj_fit(my_ext, tmp_path):
    from rlobj.train.cli import run

    config = yaml.safe_load((REPO / "examples/configs/default.yaml").read_text(encoding="utf-8"))
    config["trainer"] = {**config["trainer"], "max_steps": 2, "logger": False, "callbacks": None,
                         "default_root_dir": str(tmp_path / "run")}
    config["model"] = {**config["model"], "warmup": {"steps": 0, "eval_at_end": False}, "track_ref_kl": False,
                       "rollout": {"group_size": 4, "max_new_tokens": 5},
                       "policy": {"tiny_model": {"hidden_size": 32, "layers": 1, "heads": 2, "seed": 0}},
                       "verifier": {"class_path": "train._helpers.StartsWithDigit"}}
    config["data"] = {**config["data"], "prompts_per_step": 4, "eval_size": 4}
    base = tmp_path / "default.yaml"
    base.write_text(yaml.safe_dump(config), encoding="utf-8")
    page = tmp_path / "my_ext.yaml"
    page.write_text(_block("my_ext.yaml"), encoding="utf-8")
    # the page's command: rlobj fit --config examples/configs/default.yaml --config my_ext.yaml
    module = run(["fit", "--config", str(base), "--config", str(page)]).model
    assert type(module.objective.chain.terms[0]) is my_ext.repetition_cost
    assert any(isinstance(p, my_ext.Repeats) for p in module.providers)
    assert module.rl_updates == 2
    metrics = module.last_metrics
    assert math.isfinite(metrics["loss"]) and metrics["repetition_cost/repeats_mean"] >= 0
