"""The trainer's ``rollout:`` option: EAD, LATR and UloRL segments selected from the config."""

import math

import pytest
import torch

from rlobj.algebra import Objective
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import EADSchedule, LATREngine, SegmentRollout
from rlobj.rollout.schedules import ConstantTemperature, scheduled_sequence_logprobs
from rlobj.train import RLModule
from rlobj.train.forward import token_logprobs
from rlobj.train.strategies import parse_rollout

from ._helpers import tiny_module

RECORDS = [{"prompt": "12+3=", "answer": "15"}, {"prompt": "7+8=", "answer": "15"},
           {"prompt": "40+2=", "answer": "42"}]
# warm-up 1, then tau_t = max(2.2 - exp(t / (3 + s)), 0.1): varies within 6 tokens
FAST = {"tau_max": 1.2, "tau_min": 0.1, "d0": 3.0, "slope": 1.0, "warmup": 1, "d_scale": 1.0}


def capture(monkeypatch):
    """Record, for each RL update: the rollout, and the fields handed to Objective.prepare."""
    seen = {"rollouts": [], "fields": [], "policy_logp": [], "annealed": []}
    original_update = RLModule.update_on_rollout
    original_prepare = Objective.prepare

    def update(self, rollout, rewards, extras=None):
        seen["rollouts"].append(rollout)
        with torch.no_grad():  # the policy that sampled (before this step's update)
            seen["policy_logp"].append(token_logprobs(
                self.policy, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                rollout.response_mask, temperature=self.sampling.temperature)[0])
            if self.rollout_option.strategy == "ead":
                seen["annealed"].append(scheduled_sequence_logprobs(
                    self.policy, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                    rollout.response_mask, self.rollout_option.schedule.at_step(self.rl_updates),
                    self.sampling.temperature))
        return original_update(self, rollout, rewards, extras)

    def prepare(self, state=None, **fields):
        seen["fields"].append(fields)
        return original_prepare(self, state, **fields)

    monkeypatch.setattr(RLModule, "update_on_rollout", update)
    monkeypatch.setattr(Objective, "prepare", prepare)
    return seen


# ----------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("spec, match", [
    ("beam", r"rollout.strategy: expected one of \['plain', 'ead', 'latr', 'segments'\], got 'beam'"),
    ({"strategy": "ead", "segment_tokens": 3}, r"unknown key\(s\) \['segment_tokens'\] for strategy 'ead'"),
    ({"strategy": "ead", "schedule": {"tau_min": 2.0}}, "rollout.schedule: .*tau_min must be <= tau_max"),
    ({"strategy": "ead", "schedule": {"step": 3}}, r"unknown EADSchedule field\(s\) \['step'\]"),
    ({"strategy": "latr", "config": {"similarity": "cosine"}}, "rollout.config: .*similarity"),
    ({"strategy": "latr", "config": {"mix": {"x": 1}}}, "rollout.config.mix"),
    ({"strategy": "segments"}, "rollout.segment_tokens: expected an int >= 1, got None"),
    ({"strategy": "segments", "segment_tokens": 4, "release": "sample"}, "rollout.release: .*'group'"),
    (3, "rollout: expected a strategy name"),
])
def test_bad_rollout_option_names_the_key(spec, match):
    with pytest.raises(RlobjInputError, match=match):
        parse_rollout(spec)


def test_parse_builds_what_it_names():
    assert parse_rollout(None).strategy == parse_rollout("plain").strategy == "plain"
    ead = parse_rollout({"strategy": "ead", "schedule": FAST})
    assert ead.schedule == EADSchedule(**FAST)
    latr = parse_rollout({"strategy": "latr", "config": {"lookahead": [2, 3], "mix": {"0": 1.0, "10": 0.5}}})
    assert latr.latr.lookahead == (2, 3) and latr.latr.mix(9) == 1.0 and latr.latr.mix(10) == 0.5
    assert parse_rollout({"strategy": "segments", "segment_tokens": 2}).segment_tokens == 2


def test_tree_and_segments_need_the_hf_engine():
    with pytest.raises(RlobjInputError, match="rollout.strategy: 'latr' wraps the HF engine"):
        RLModule(rollout="latr", engine="vllm")


# ----------------------------------------------------------------------------- EAD
def test_ead_steps_the_schedule_and_feeds_the_annealed_logprobs(monkeypatch):
    seen = capture(monkeypatch)
    module = tiny_module(rollout={"strategy": "ead", "schedule": FAST}, temperature=0.9,
                         objective=["grpo", {"truncated_is": {"cap": 2.0}}], optimizer="adamw", lr=1e-2)
    metrics = [module.rl_update(RECORDS, step) for step in range(3)]
    assert [m["rollout/ead_step"] for m in metrics] == [0.0, 1.0, 2.0]
    assert [m["rollout/ead_decay"] for m in metrics] == [3.0, 4.0, 5.0]
    for k in range(3):
        rollout, fields = seen["rollouts"][k], seen["fields"][k]
        mask = rollout.response_mask
        # the engine's log-probs are those of the annealed distribution at schedule step k ...
        assert torch.allclose(rollout.logp_rollout, seen["annealed"][k], atol=1e-5)
        assert fields["extras"]["logp_rollout"] is rollout.logp_rollout
        # ... while logp_old is the sampling policy at the plain temperature
        assert torch.allclose(fields["logp_old"], seen["policy_logp"][k], atol=1e-5)
        assert (fields["logp_old"] - rollout.logp_rollout).abs()[mask].max() > 1e-2
        assert math.isfinite(metrics[k]["loss"]) and 0 < metrics[k]["is/weight_mean"]
    assert metrics[0]["is/truncated_frac"] >= 0.0


def test_flat_schedule_trains_like_plain_sampling():
    """EAD with tau_t = 1 everywhere samples the same tokens as plain sampling (same seed) and
    takes the same optimizer step."""
    flat = {"tau_max": 1.0, "tau_min": 1.0}
    plain, ead = tiny_module(), tiny_module(rollout={"strategy": "ead", "schedule": flat})
    assert ead.rollout_option.schedule.temperatures(torch.arange(50)).eq(1.0).all()
    a, b = plain.rl_update(RECORDS, 0), ead.rl_update(RECORDS, 0)
    assert a["reward/mean"] == b["reward/mean"] and a["response/length_mean"] == b["response/length_mean"]
    for p, q in zip(plain.policy.parameters(), ead.policy.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert ConstantTemperature().temperatures(torch.arange(3)).tolist() == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- LATR
def test_latr_rollouts_train(monkeypatch):
    seen = capture(monkeypatch)
    config = {"lookahead": [2, 3], "force_return_step": 6, "tau_abs": 0.0, "tau_rel": 1.0,
              "mix": {0: 1.0, 1: 0.5}}
    module = tiny_module(rollout={"strategy": "latr", "config": config})
    metrics = [module.rl_update(RECORDS, step) for step in range(2)]
    assert isinstance(module.strategy_engine, LATREngine)
    assert [m["rollout/latr_eta"] for m in metrics] == [1.0, 0.5]  # mix read at rl_updates
    assert metrics[0]["rollout/latr_tree_fraction"] > 0.5
    for rollout in seen["rollouts"]:
        assert torch.bincount(rollout.group_ids).tolist() == [module.hparams.group_size] * len(RECORDS)
    for m in metrics:
        assert math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])
    # evaluation samples plainly with the base engine
    assert module.evaluate(RECORDS[:1])["pass@1"] >= 0.0


# ----------------------------------------------------------------------------- UloRL segments
def test_segments_continue_and_train_on_complete_groups(monkeypatch):
    seen = capture(monkeypatch)
    module = tiny_module(rollout={"strategy": "segments", "segment_tokens": 2}, max_new_tokens=6)
    metrics = [module.rl_update([RECORDS[step % 3]], step) for step in range(4)]
    engine = module.strategy_engine
    assert isinstance(engine, SegmentRollout)
    released = [m["rollout/released_samples"] for m in metrics]
    # budget 6 = 3 segments of 2: the prompt admitted at step 0 is complete at step 2 at the latest
    assert sum(released[:3]) >= module.hparams.group_size
    assert sum(released) + metrics[-1]["rollout/pending_samples"] == 4 * module.hparams.group_size
    assert len(seen["rollouts"]) == sum(r > 0 for r in released)  # no update without a group
    for rollout, fields in zip(seen["rollouts"], seen["fields"]):
        counts = torch.bincount(fields["group_ids"])
        assert (counts == module.hparams.group_size).all()  # complete groups, ids 0..k-1
        for row in range(len(rollout)):  # each row answers the record its group came from
            prompt = module.tokenizer.decode(rollout.prompt_ids[row][rollout.prompt_mask[row]].tolist())
            assert prompt in {r["prompt"] for r in RECORDS}
        first = [module.tokenizer.decode(rollout.prompt_ids[r][rollout.prompt_mask[r]].tolist())
                 for r in range(len(rollout))]
        for g in range(len(counts)):
            assert len({first[r] for r in range(len(rollout)) if int(fields["group_ids"][r]) == g}) == 1
    for m in metrics:
        if m["rollout/released_samples"] > 0:
            assert math.isfinite(m["loss"])


# ----------------------------------------------------------------------------- the shipped YAMLs
@pytest.mark.parametrize("config", ["ead.yaml", "latr.yaml", "ulorl_segments.yaml"])
def test_rollout_config_trains_through_the_cli(config, tmp_path, monkeypatch):
    """Smoke: each shipped rollout YAML runs 1 sft + 3 RL steps through `rlobj fit`."""
    import csv
    import glob
    from pathlib import Path

    from rlobj.train.cli import main

    monkeypatch.chdir(tmp_path)
    path = Path(__file__).resolve().parents[2] / "examples" / "configs" / "rollout" / config
    main(["fit", "--config", str(path), "--trainer.max_steps=4", "--model.warmup_sft_steps=1",
          "--data.prompts_per_step=2", "--model.group_size=4", "--data.eval_size=2", "--model.eval_samples=2",
          "--model.eval_k=[1, 2]", "--model.tiny_model={hidden_size: 128, layers: 1, heads: 2, seed: 0}",
          "--trainer.callbacks=[]", "--trainer.logger.init_args.save_dir=runs"])
    (metrics_csv,) = glob.glob(str(tmp_path / "runs" / "**" / "metrics.csv"), recursive=True)
    rows = [r for r in csv.DictReader(open(metrics_csv)) if r.get("phase") == "1.0"]
    # max_steps counts optimizer steps: a segment step that releases no group takes none
    assert len(rows) == 3 if config != "ulorl_segments.yaml" else len(rows) >= 3
    key = {"ead.yaml": "rollout/ead_step", "latr.yaml": "rollout/latr_eta",
           "ulorl_segments.yaml": "rollout/released_samples"}[config]
    assert all(row[key] != "" for row in rows)
    trained = [row for row in rows if config != "ulorl_segments.yaml" or float(row[key]) > 0]
    assert len(trained) == 3 and all(math.isfinite(float(row["loss"])) for row in trained)
    if config == "ead.yaml":
        assert [float(r["rollout/ead_step"]) for r in rows] == [0.0, 1.0, 2.0]
    if config == "ulorl_segments.yaml":  # 5 tokens in segments of 2: step 1's groups are out by step 3
        assert sum(float(r["rollout/released_samples"]) for r in rows) >= 3 * 2 * 4
