"""RLVER's simulated user: emotion bookkeeping with a scripted user, and a real second model
(a tiny HF engine) driving episodes through the multi-turn sampler."""

import pytest
from train._helpers import tiny_module

from rlobj.ops.errors import RlobjInputError
from rlobj.train.envs.simulated_user import (
    EngineUser,
    SimulatedUserEnvironment,
    emotion_band,
    parse_change,
)
from rlobj.train.multiturn import EnvironmentScorer, MultiTurnSampler

ROW = {"prompt": "Be kind.", "persona": "a tired nurse", "scene": "after a night shift"}


class ScriptedUser:
    """Judges +40 for a reply containing 'sorry', -25 for one containing 'no', nothing parseable
    otherwise; replies 'ok'."""

    def __init__(self):
        self.prompts = []

    def __call__(self, prompt, seed=0):
        self.prompts.append(prompt)
        if "Think about how" in prompt:
            last = prompt.split("Assistant: ")[-1].split("\n")[0]
            return "I feel heard.\nChange: +40" if "sorry" in last else (
                "That hurt.\nChange: -25" if "no" in last else "hmm")
        return "rough night" if "Open the conversation" in prompt else "ok"


def test_emotion_bands_and_parsing():
    assert [emotion_band(s) for s in (100, 99, 70, 40, 39, 10, 9, 0)] == ["S", "A", "A", "B", "C", "C", "F", "F"]
    assert parse_change("blah\nChange: +15\nmore\nChange: [-7]", 50) == -7
    assert parse_change("Change: 90", 50) == 50 and parse_change("no number", 50) is None


def test_scripted_episode_rewards_are_emotion_changes():
    user = ScriptedUser()
    env = SimulatedUserEnvironment(user=user)
    first = env.reset(ROW)
    assert first == "Be kind.\nUser: rough night\nAssistant: "
    assert "a tired nurse" in user.prompts[0]
    observation, reward, done, info = env.step("I am sorry")  # 30 + 40 = 70
    assert (reward, done, info) == (0.4, False, {"emotion": 70.0, "judged": True})
    assert observation == "\nUser: ok\nAssistant: "
    assert "Your emotion band is A" in user.prompts[-1]
    _, reward, done, info = env.step("whatever")  # unparsed judgement: change 0
    assert (reward, done, info["judged"]) == (0.0, False, False)
    _, reward, done, _ = env.step("so sorry")  # 70 + 40 = 110 -> capped at 100: the user leaves satisfied
    assert reward == pytest.approx(0.3) and done
    env.reset(ROW)
    _, reward, done, _ = env.step("no")  # 30 - 25 = 5
    _, reward, done, info = env.step("no")  # 5 - 25 = -20 <= 0: the user leaves
    assert done and reward == pytest.approx(-0.25) and info["emotion"] == -20


def test_bad_settings():
    with pytest.raises(RlobjInputError, match="start_score"):
        SimulatedUserEnvironment(user=ScriptedUser(), start_score=120)
    with pytest.raises(RlobjInputError, match="persona"):
        SimulatedUserEnvironment(user=ScriptedUser()).reset({"prompt": "hi"})
    with pytest.raises(RlobjInputError, match="callable"):
        SimulatedUserEnvironment(user=42)


def test_a_second_model_drives_the_user_through_the_sampler():
    """The user is a tiny HF model on its own engine (random weights: its judgements rarely
    parse, so most changes are 0); episodes run, replay with the same seeds, rewards are bounded."""
    module = tiny_module(rollout={"max_new_tokens": 3, "group_size": 2})
    user = EngineUser({"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 1}}, max_new_tokens=8)
    sampler = MultiTurnSampler(lambda: SimulatedUserEnvironment(user=user, max_turns=2), max_turns=3, max_tokens=400,
                               max_observation_tokens=64)
    records = [dict(ROW, prompt="1+1=")]
    batch = sampler.sample(module.context(0), records, 2)
    transcripts = sampler.last_transcripts
    assert batch.extras["num_turns"].tolist() == [2.0, 2.0]  # the environment ends after 2 turns
    assert bool(batch.extras["observation_mask"].any())
    scores = EnvironmentScorer()(module.context(0), batch)
    assert all(-1.0 <= s.reward <= 0.7 for s in scores)
    again = sampler.sample(module.context(0), records, 2)
    assert sampler.last_transcripts == transcripts
    assert bool((again.rollout.response_ids == batch.rollout.response_ids).all())
