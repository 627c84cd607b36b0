"""The countdown-trace reproductions (``examples/reproductions/run_all.py``) run end to end in
``--smoke`` mode for one claim through the trainer and write its table, plot and verdicts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_all_smoke_writes_a_claims_results(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "reproductions" / "run_all.py"), "--smoke",
                             "--claims", "clip_higher", "--out", str(tmp_path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = (tmp_path / "clip_higher" / "results.md").read_text()
    assert text.startswith("| method |") and "smoke run, 1 seed(s)" in text
    assert "Verdicts by the pre-registered rule" in text
    data = json.loads((tmp_path / "clip_higher" / "results.json").read_text())
    assert data["smoke"] is True and data["claim"] == "clip_higher" and len(data["verdicts"]) == 1
    assert (tmp_path / "clip_higher" / "entropy.png").stat().st_size > 1000
    assert (tmp_path / "warm_start" / "results.md").read_text().startswith("| seed |")


def test_trace_task_demonstrations_pass_the_verifier_and_faults_are_named():
    from rlobj.train.trace_tasks import CountdownTrace, TraceVerifier, check_trace

    task = CountdownTrace(seed=3)
    assert all(TraceVerifier()(r["completion"], r) == 1.0 for r in task.records(0, 200))
    assert check_trace("7+3=10 10 5;10-5=5", [7, 3, 5], 5) == (True, "ok")
    assert check_trace("7+3=10 5 10;10-5=5", [7, 3, 5], 5)[1].startswith("step 1: copied pool")
    assert check_trace("7+3=11 11 5;11-5=6", [7, 3, 5], 6)[1] == "step 1: 7+3 is not 11"
    assert check_trace("7+9=16 16 5;16-5=11", [7, 3, 5], 11)[1].startswith("step 1: 9 is not in the pool")
    assert check_trace("7+3=10 10 5", [7, 3, 5], 10)[1].startswith("the trace stops")
    assert check_trace("3-7=4 4 5;4+5=9", [7, 3, 5], 9)[0] is False  # negative results are refused
    with pytest.raises(ValueError, match="numbers"):
        CountdownTrace(numbers=1)
    with pytest.raises(KeyError, match="numbers"):
        TraceVerifier()("1+1=2", {"target": 2})


def test_countdown_plus_skews_the_signs_and_keeps_the_default_stream():
    from rlobj.train.trace_tasks import CountdownTrace, TraceVerifier

    # the default stream is the one the second full run used (record pinned before `plus` existed)
    assert CountdownTrace(seed=0, low=1, high=4).record(7)["completion"] == "3-1=2 2 2 4 1;2+4=6 6 2 1;6-1=5 5 2;2+5=7"
    for plus, low, high in ((0.92, 0.88, 0.96), (0.7, 0.65, 0.75)):
        task = CountdownTrace(seed=1, low=1, high=6, plus=plus)
        records = task.records(0, 400)
        assert all(TraceVerifier()(r["completion"], r) == 1.0 for r in records)
        signs = [step.split("=")[0].strip("0123456789") for r in records for step in r["completion"].split(";")]
        share = signs.count("+") / len(signs)
        assert low < share < high, (plus, share)
    assert "plus=0.7" in repr(CountdownTrace(plus=0.7)) and "plus" not in repr(CountdownTrace())
    for bad in (0.0, 1.0, True, "0.5"):
        with pytest.raises(ValueError, match="CountdownTrace.plus"):
            CountdownTrace(plus=bad)
