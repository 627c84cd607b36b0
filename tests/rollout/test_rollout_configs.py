"""The example configs of the rollout strategies build what they name (intended `rollout:` schema)."""

import importlib
from pathlib import Path

import pytest
import yaml

from rlobj.registry import build_objective
from rlobj.rollout import (
    EADSchedule,
    HFEngine,
    LATRConfig,
    LATREngine,
    SamplingConfig,
    SegmentRollout,
    VLLMEngine,
)

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


def build(spec, **extra):
    """Instantiate a {class_path, init_args} spec (nested specs too)."""
    if isinstance(spec, dict) and "class_path" in spec:
        module, _, name = spec["class_path"].rpartition(".")
        args = {k: build(v) for k, v in (spec.get("init_args") or {}).items()}
        return getattr(importlib.import_module(module), name)(**args, **extra)
    return spec


def load(name):
    return yaml.safe_load((CONFIGS / name).read_text())


def test_ead_config(tiny_model):
    config = load("rollout/ead.yaml")
    schedule = build(config["model"]["rollout"]["temperature_schedule"])
    assert schedule == EADSchedule()
    build_objective(config["model"]["objective"])
    SamplingConfig(max_new_tokens=4, temperature_schedule=schedule.at_step(3))


def test_latr_config(tiny_model):
    config = load("rollout/latr.yaml")
    engine = build(config["model"]["rollout"]["strategy"], engine=HFEngine(tiny_model))
    assert isinstance(engine, LATREngine) and isinstance(engine.config, LATRConfig)
    assert engine.config.similarity == "math" and engine.config.mix(150) == 0.75
    assert engine.config.lookahead == (20, 30, 50)
    build_objective(config["model"]["objective"])


def test_ulorl_config(tiny_model):
    config = load("rollout/ulorl_segments.yaml")
    rollout = build(config["model"]["rollout"]["strategy"], engine=HFEngine(tiny_model))
    assert isinstance(rollout, SegmentRollout) and rollout.segment_tokens == 16384
    assert config["model"]["max_new_tokens"] == 8 * rollout.segment_tokens


def test_brorl_config_uses_trainer_keys():
    model = load("brorl.yaml")["model"]
    assert model["group_size"] >= 256 and model["micro_batch_size"] < model["group_size"]
    assert model["engine_args"]["max_batch_size"] < model["group_size"]


def test_vllm_engine_rejects_a_schedule_clearly():
    engine = object.__new__(VLLMEngine)  # no vLLM needed: the check runs before any vLLM call
    with pytest.raises(ValueError, match="temperature_schedule .* not wired into vLLM"):
        engine._sampling_params(SamplingConfig(max_new_tokens=2,
                                               temperature_schedule=EADSchedule()), None)
