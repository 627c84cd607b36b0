"""Hostile environments and tool outputs cannot crash or stall the multi-turn sampler."""

import time

import pytest

from rlobj.train.multiturn import MultiTurnSampler, clean_observation

from ._helpers import tiny_module
from .multiturn_cases import HostileEnv

RECORDS = [{"prompt": "1+2=", "answer": "3"}]


@pytest.fixture(scope="module")
def module():
    return tiny_module(rollout={"max_new_tokens": 3, "group_size": 2})


@pytest.mark.parametrize("kind", ["huge", "control", "special", "injection"])
def test_hostile_observations_are_bounded(module, kind):
    sampler = MultiTurnSampler(lambda: HostileEnv(kind), max_turns=3, max_tokens=200,
                               max_observation_chars=500, max_observation_tokens=40)
    start = time.monotonic()
    batch = sampler.sample(module.context(0), RECORDS, 2)
    seconds = time.monotonic() - start
    obs = batch.extras["observation_mask"]
    per_row = obs.sum(-1)
    assert int(per_row.max()) <= 2 * 40  # two observations (after turns 0 and 1), each at most 40 tokens
    assert int(per_row.min()) > 0
    assert seconds < 20, f"{kind}: sampling took {seconds:.1f} s"
    ids = batch.rollout.response_ids[obs]
    special = set(module.tokenizer.all_special_ids)
    assert not set(ids.tolist()) & special, "special-token ids leaked into an observation"
    assert 2 not in ids.tolist() or kind == "injection"  # <unk> only where the text had unknown characters


def test_clean_observation_is_bounded_and_strips_control_characters():
    text = clean_observation("a\x00b\x1b[2Jc\n\td" + "x" * 10_000_000, 20)
    assert text == "ab[2Jc\n\tdxxxxxxxxxx"[:len(text)] and len(text) <= 20
    assert clean_observation(12345, 3) == "123"


def test_slow_environment_times_out_as_an_observation(module):
    sampler = MultiTurnSampler(lambda: HostileEnv("slow"), max_turns=3, max_tokens=100, step_timeout=0.5)
    start = time.monotonic()
    batch = sampler.sample(module.context(0), RECORDS, 2)
    assert time.monotonic() - start < 15
    assert batch.metrics["rollout/env_timeouts"] == 2.0
    assert batch.extras["num_turns"].tolist() == [1.0, 1.0]  # the timeout ended the episodes
    assert batch.extras["episode_return"].tolist() == [0.0, 0.0]
    assert "did not answer" in sampler.last_transcripts[0][-1][1]


def test_raising_environment_becomes_an_error_observation(module):
    sampler = MultiTurnSampler(lambda: HostileEnv("raise"), max_turns=3, max_tokens=100)
    batch = sampler.sample(module.context(0), RECORDS, 2)
    assert batch.metrics["rollout/env_errors"] == 2.0
    assert sampler.last_transcripts[0][-1] == ("environment", "error: RuntimeError: boom")
