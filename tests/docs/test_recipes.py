"""docs/recipes.md is generated from rlobj.presets.recipes and kept current; every recipe agrees
with its reference wherever its row does not say why it differs, builds from its YAML name, and
prescribes only trainer settings that RLModule takes."""

import importlib.util
import inspect
from pathlib import Path

import pytest

from rlobj.presets.recipes import RECIPES, TRAINER_KEYS, FromChain
from rlobj.registry import build_objective, to_config
from rlobj.train import RLModule

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _tool():
    spec = importlib.util.spec_from_file_location("recipe_table", DOCS / "_tools" / "recipe_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_page_is_current():
    assert _tool().render() == (DOCS / "recipes.md").read_text(encoding="utf-8"), (
        "docs/recipes.md is stale: run `.venv/bin/python docs/_tools/recipe_table.py` and commit it")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_matches_its_reference(name):
    recipe = RECIPES[name]
    assert recipe.settings and recipe.reference and recipe.paper
    for setting, ours, theirs, where, differs in recipe.rows():
        assert where, f"{name}.{setting}: no source for the reference value"
        if not differs:
            assert ours == theirs, f"{name}.{setting}: rlobj {ours!r} != reference {theirs!r} ({where})"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_builds_from_its_yaml_name_and_round_trips(name):
    recipe = RECIPES[name]
    assert build_objective(name) == recipe.objective
    assert build_objective(to_config(recipe.objective)) == recipe.objective


def test_trainer_settings_are_rlmodule_arguments():
    import dataclasses

    from rlobj.train.config import RolloutConfig, UpdateConfig

    parameters = set(inspect.signature(RLModule.__init__).parameters)
    groups = {"rollout": RolloutConfig, "update": UpdateConfig}
    for group, field in TRAINER_KEYS.values():
        assert group in parameters
        assert group == "optimizer" or field in {f.name for f in dataclasses.fields(groups[group])}
    for recipe in RECIPES.values():
        settings = recipe.trainer
        assert set(settings) <= parameters
        for group, cls in groups.items():  # the values build the groups (types and ranges checked)
            cls(**settings.get(group, {}))


def test_objective_settings_are_read_from_the_chain():
    # changing the chain changes the table: the rlobj column is not a hand-written copy
    from rlobj.terms.surrogates import clip_ratio

    recipe = RECIPES["lp_reg_recipe"]
    edited = recipe.objective.replace(clip_ratio, clip_ratio(eps_low=0.2, eps_high=0.2))
    assert FromChain(clip_ratio, "eps_high").read(edited) == 0.2
    assert FromChain(clip_ratio, "eps_high").read(recipe.objective) == 9.0


def test_paper_rows_point_at_the_recipes():
    import re

    rows = {}
    for line in (DOCS / "papers.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*(\d+)\s*\|[^|]*\|([^|]*)\|[^|]*\|([^|]*)\|", line)
        if match:
            rows[int(match.group(1))] = (match.group(2), match.group(3).strip())
    pointing = {n for n, (_, recipe) in rows.items() if recipe.strip("`") in RECIPES}
    assert pointing == {1, 3, 8, 10, 11, 12, 17, 18, 20, 21, 22, 29, 31, 34, 35, 38, 41, 47, 53, 55, 57, 66, 67, 69}
    # DPH-RL is dph_divergence (stored initial-policy samples), not the online forward_kl
    assert "`dph_divergence`" in rows[8][0] and "forward_kl" not in rows[8][0]


def test_every_recipe_is_public():
    import rlobj
    from rlobj import presets

    assert set(RECIPES) <= set(presets.__all__) and set(RECIPES) <= set(rlobj.__all__)
    assert all(getattr(rlobj, name) is RECIPES[name].objective for name in RECIPES)
