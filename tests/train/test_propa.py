"""PROPA end to end: a YAML run through the CLI with the process reward model and SFT/RL interleaving
(their own tests: test_process_reward.py, test_interleave.py)."""

import math

from ._helpers import fit_rollout_example


def test_propa_yaml_trains_two_rl_steps_through_the_cli(tmp_path, monkeypatch):
    rows = fit_rollout_example(tmp_path, monkeypatch, "propa")
    rl = [r for r in rows if r.get("phase") == "1.0"]
    assert len(rl) == 2 and all(math.isfinite(float(r["loss"])) for r in rl)
    assert all(float(r["verifier/reused_fraction"]) == 1.0 and float(r["prm/examples"]) > 0 for r in rl)
    sft = [r for r in rows if r.get("interleave/sft/nll")]
    assert len(sft) == 1 and math.isfinite(float(sft[0]["interleave/sft/nll"]))
