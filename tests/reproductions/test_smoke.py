"""Every reproduction script runs end to end in its ``--smoke`` mode and writes its table and plots."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "examples" / "reproductions").glob("[0-9][0-9]_*.py"))
#: Plots each script must write.
PLOTS = {
    "01_entropy_collapse.py": {"entropy.png", "pass1.png", "pass4.png"},
    "02_psr_nsr.py": {"passk.png"},
    "03_forking_tokens.py": {"pass1.png", "pass4.png", "train_reward.png"},
    "04_noisy_verifier.py": {"pass1.png", "pass4.png"},
    "05_support_shrinkage.py": {"passk.png", "solve_rates.png"},
}


def test_every_experiment_has_a_script():
    assert [p.name for p in SCRIPTS] == sorted(PLOTS)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_smoke_run_writes_table_and_plots(script, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(tmp_path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("| ") and "smoke run, 1 seed(s)" in table
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["smoke"] is True and data["seeds"] == 1
    written = {p.name for p in tmp_path.glob("*.png")}
    assert PLOTS[script.name] <= written, f"{script.name} wrote {sorted(written)}"
    for name in PLOTS[script.name]:
        assert (tmp_path / name).stat().st_size > 1000
