"""The suite's environment comes from the root ``conftest.py`` alone, so it does not depend on
which test module happens to be imported first: type checks on, Hugging Face offline, and the
Hypothesis profile named by ``HYPOTHESIS_PROFILE``."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from hypothesis import settings

REPO = pathlib.Path(__file__).resolve().parents[1]
SWITCHES = ("RLOBJ_TYPECHECK", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def module_level_environment_writes(path: pathlib.Path) -> list[str]:
    """The statements at module level of ``path`` (outside functions) that write one of the
    switches into ``os.environ``."""
    found, source = [], path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        text = ast.get_source_segment(source, node) or ""
        if "environ" in text and any(name in text for name in SWITCHES):
            found.append(f"{path.name}:{node.lineno}: {text.splitlines()[0]}")
    return found


def test_no_test_module_sets_the_switches_at_import():
    offenders = [line for path in sorted((REPO / "tests").rglob("*.py"))
                 for line in module_level_environment_writes(path)]
    assert not offenders, "set these once in the root conftest.py:\n" + "\n".join(offenders)


def test_the_ast_check_catches_a_module_level_switch(tmp_path):
    module = tmp_path / "test_bad.py"
    module.write_text('import os\n\nos.environ.setdefault("RLOBJ_TYPECHECK", "1")\n\n'
                      'def test_x():\n    os.environ["RLOBJ_TYPECHECK"] = "0"\n')
    assert [line.split(": ", 1)[1] for line in module_level_environment_writes(module)] == [
        'os.environ.setdefault("RLOBJ_TYPECHECK", "1")']


def test_typechecks_are_on():
    from rlobj.ops.errors import RlobjInputError  # noqa: F401  (imports rlobj first on purpose)
    from rlobj.ops.reductions import masked_mean
    from rlobj.ops.typecheck import typechecks_enabled

    assert all(os.environ.get(name) == "1" for name in SWITCHES)
    assert typechecks_enabled()
    with pytest.raises(Exception, match="mask"):  # a float mask is refused (beartype + jaxtyping)
        masked_mean(torch.ones(2, 3), torch.ones(2, 3))


@pytest.mark.parametrize("order", [["tests/test_environment.py", "tests/ops/test_reductions.py"],
                                   ["tests/ops/test_reductions.py", "tests/test_environment.py"]])
def test_typechecks_are_on_whatever_runs_first_and_whatever_the_shell_says(order):
    """A fresh pytest with the switch off in the shell, modules collected in either order: the
    check above still passes (the conftest, not a test module, turns type checks on)."""
    env = {**os.environ, "RLOBJ_TYPECHECK": "0", "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *order,
                          "-k", "typechecks and not whatever"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 passed" in run.stdout, run.stdout[-3000:]


def test_the_hypothesis_profile_follows_the_environment():
    name = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    assert settings.default.max_examples == settings.get_profile(name).max_examples
    assert settings.default.deadline is None and settings.default.database is None
    assert settings.get_profile("dev").max_examples < settings.get_profile("ci").max_examples
