"""The example configs of the samplers build what they name (the trainer's `sampler:` option)."""

from pathlib import Path

import pytest
import torch
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
from rlobj.train.samplers import EADSampler, LATRSampler, SegmentSampler, build_sampler

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


def load(name):
    return yaml.safe_load((CONFIGS / name).read_text())


def test_ead_config(tiny_model):
    model = load("rollout/ead.yaml")["model"]
    option = build_sampler(model["sampler"])
    assert isinstance(option, EADSampler) and isinstance(option.schedule, EADSchedule)
    tau = option.schedule.temperatures(torch.arange(model["rollout"]["max_new_tokens"]))
    assert tau[0] > 1.0 > tau[-1]  # explores first, exploits at the end, within the budget
    assert "truncated_is" in str(build_objective(model["objective"]))
    SamplingConfig(max_new_tokens=4, temperature_schedule=option.schedule.at_step(3))


def test_latr_config(tiny_model):
    model = load("rollout/latr.yaml")["model"]
    option = build_sampler(model["sampler"])
    assert isinstance(option, LATRSampler)
    engine = LATREngine(HFEngine(tiny_model), option.config)
    assert isinstance(engine.config, LATRConfig)
    assert engine.config.similarity == "math" and engine.config.mix(30) == 0.75
    build_objective(model["objective"])


def test_ulorl_config(tiny_model):
    model = load("rollout/ulorl_segments.yaml")["model"]
    option = build_sampler(model["sampler"])
    assert isinstance(option, SegmentSampler)
    rollout = SegmentRollout(HFEngine(tiny_model), option.segment_tokens, option.release)
    assert rollout.segment_tokens < model["rollout"]["max_new_tokens"]


def test_brorl_config_uses_trainer_keys():
    model = load("brorl.yaml")["model"]
    assert model["rollout"]["group_size"] >= 256 and model["update"]["micro_batch_size"] < model["rollout"]["group_size"]
    assert model["sampler"]["broad"]["chunk_size"] < model["rollout"]["group_size"]


def test_vllm_engine_refuses_greedy_with_a_schedule():
    engine = object.__new__(VLLMEngine)  # no vLLM needed: the check runs before any vLLM call
    with pytest.raises(ValueError, match="temperature_schedule needs random sampling"):
        engine._sampling_params(SamplingConfig(max_new_tokens=2, greedy=True,
                                               temperature_schedule=EADSchedule()), None)
