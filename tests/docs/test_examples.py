"""Every runnable script under examples/ runs to completion (the docs show its output)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path for path in (REPO / "examples").glob("*.py") if not path.name.startswith("_"))


def test_there_is_at_least_one_example():
    assert SCRIPTS, f"no example scripts found under {REPO / 'examples'}"


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_example_script_exits_zero(script):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, (
        f"{script.relative_to(REPO)} exited with {result.returncode}\n"
        f"--- stdout (tail)\n{result.stdout[-3000:]}\n--- stderr (tail)\n{result.stderr[-3000:]}")
    assert result.stdout.strip(), f"{script.name} printed nothing"
