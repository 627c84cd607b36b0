"""Imports point downward only (DESIGN.md section 1), checked on the source of every module.

Order, bottom first: ops <- algebra (state, >>, aggregation) <- terms <- presets / registry
<- rollout (engines and batch filters, which may reuse term helpers such as
``zero_variance_groups`` but compute no loss); verifiers and data sit beside them; train
orchestrates everything; eval reads results. Verifiers never import models.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "rlobj"

ALLOWED = {
    "ops": {"ops"},
    "algebra": {"ops", "algebra"},
    "terms": {"ops", "algebra", "terms"},
    "presets": {"ops", "algebra", "terms", "presets"},
    "rollout": {"ops", "algebra", "terms", "presets", "rollout"},
    "verifiers": {"verifiers"},
    "data": {"data", "verifiers", "ops"},
    "eval": {"eval", "ops", "verifiers", "data", "rollout"},
    "integrations": {"ops", "algebra", "terms", "presets", "data", "integrations"},
}


def imports_of(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downward(layer):
    offenders = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] != "rlobj":
                continue
            if len(parts) == 1 or parts[1] not in ALLOWED[layer]:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_verifiers_do_not_import_models():
    offenders = [f"{path.relative_to(ROOT)} imports {name}"
                 for path in sorted((ROOT / "verifiers").rglob("*.py"))
                 for name in imports_of(path)
                 if name.split(".")[0] in {"torch", "transformers", "vllm"}]
    assert not offenders, "\n".join(offenders)


def test_nothing_imports_the_integrations():
    """``rlobj.integrations`` (TRL / verl adapters) sits on top: no other part of rlobj imports it."""
    offenders = [f"{path.relative_to(ROOT)} imports {name}"
                 for path in sorted(ROOT.rglob("*.py")) if "integrations" not in path.relative_to(ROOT).parts
                 for name in imports_of(path) if name.startswith("rlobj.integrations")]
    assert not offenders, "\n".join(offenders)
