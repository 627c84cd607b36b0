"""The multi-turn sampler: masking and behaviour log-probs token by token, budgets, bad input; hostile
environments and tool outputs cannot crash or stall it."""

import time

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.forward import token_logprobs
from rlobj.train.multiturn import MultiTurnSampler, clean_observation

from ._helpers import tiny_module
from .multiturn_cases import OBSERVATIONS, HostileEnv, ScriptedEnv

RECORDS = [{"prompt": "1+2=", "answer": "3"}, {"prompt": "40+2=", "answer": "42"}]


def sample(module, sampler, records=RECORDS, n=2, step=0):
    return sampler.sample(module.context(step), records, n)


def test_masking_and_logprobs_token_by_token():
    module = tiny_module(policy={"dtype": "float64"}, rollout={"max_new_tokens": 4, "group_size": 2})
    sampler = MultiTurnSampler(ScriptedEnv, max_turns=3, max_tokens=64)
    batch = sample(module, sampler)
    rollout, extras = batch.rollout, batch.extras
    obs, turns = extras["observation_mask"], extras["turn_ids"]
    encoded = [module.encode(text) for text in OBSERVATIONS]
    checked_obs = checked_gen = 0
    for b in range(len(rollout)):
        valid = rollout.response_mask[b]
        ids = rollout.response_ids[b][valid].tolist()
        is_obs = obs[b][valid].tolist()
        turn = turns[b][valid].tolist()
        # the transcript is turn 0, obs 0, turn 1, obs 1, turn 2 (the env ends after 3 turns)
        position, runs = 0, []
        while position < len(ids):
            end = position
            while end < len(ids) and is_obs[end] == is_obs[position]:
                end += 1
            runs.append((is_obs[position], ids[position:end], turn[position:end]))
            position = end
        assert [r[0] for r in runs] == [False, True, False, True, False], runs
        for k, (_, tokens, turn_of) in enumerate(runs[0::2]):
            assert turn_of == [k] * len(tokens)
        for k, (_, tokens, turn_of) in enumerate(runs[1::2]):
            assert tokens == encoded[k] and turn_of == [-1] * len(tokens)
            checked_obs += len(tokens)
        assert float(rollout.logp_rollout[b][valid][torch.tensor(is_obs)].abs().sum()) == 0.0
        checked_gen += len(ids) - sum(is_obs)
    action = batch.action_mask()
    assert torch.equal(action, rollout.response_mask & ~obs)
    # recompute with the policy on the whole transcript: every generated token's log-prob is the
    # one the engine reported for the distribution it sampled (temperature 1, no top-k/top-p)
    with torch.no_grad():
        logp, _ = token_logprobs(module.policy, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                                 rollout.response_mask)
    gap = (logp - rollout.logp_rollout).abs()[action]
    print(f"\nmasking test: {len(rollout)} trajectories, {checked_gen} generated tokens, {checked_obs} observation "
          f"tokens; max |logp_policy - logp_rollout| on generated tokens = {float(gap.max()):.2e}")
    assert checked_gen > 0 and checked_obs > 0
    assert float(gap.max()) < 1e-5  # the engine reports float32 log-probs
    # the check can fail: hiding the observations from attention changes the generated tokens' log-probs
    with torch.no_grad():
        hidden, _ = token_logprobs(module.policy, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, action)
    assert float((hidden - rollout.logp_rollout).abs()[action].max()) > 1e-3
    # rewards at turn ends: turn k's reward k+1 on its last generated token
    for b in range(len(rollout)):
        ends = [t for t in range(rollout.response_ids.shape[1]) if extras["turn_rewards"][b, t] != 0]
        assert extras["turn_rewards"][b, ends].tolist() == [1.0, 2.0, 3.0]
        assert [int(turns[b, t]) for t in ends] == [0, 1, 2]
        assert all(t + 1 == rollout.response_ids.shape[1] or turns[b, t + 1] != turns[b, t] for t in ends)
    assert extras["episode_return"].tolist() == [6.0] * 4
    assert batch.metrics["rollout/turns_mean"] == 3.0


def test_logprobs_under_top_k_temperature_are_the_sampled_distribution():
    from rlobj.rollout import sampling_logprobs
    from rlobj.rollout.logprobs import response_logits

    module = tiny_module(policy={"dtype": "float64"}, rollout={"max_new_tokens": 3, "group_size": 2,
                                                                "temperature": 0.7, "top_k": 5})
    batch = sample(module, MultiTurnSampler(ScriptedEnv, max_turns=3, max_tokens=64))
    r = batch.rollout
    with torch.no_grad():
        logits = response_logits(module.policy, r.prompt_ids, r.prompt_mask, r.response_ids, r.response_mask)
    dist = sampling_logprobs(logits.reshape(-1, logits.shape[-1]), 0.7, 5).reshape(logits.shape)
    expected = dist.gather(-1, r.response_ids.unsqueeze(-1)).squeeze(-1)
    action = batch.action_mask()
    assert float((expected - r.logp_rollout).abs()[action].max()) < 1e-5


def test_budgets_stop_trajectories():
    module = tiny_module(rollout={"max_new_tokens": 4, "group_size": 2})
    one_turn = sample(module, MultiTurnSampler(ScriptedEnv, max_turns=1, max_tokens=64))
    assert not bool(one_turn.extras["observation_mask"].any())  # no observation after the last turn
    assert one_turn.extras["num_turns"].tolist() == [1.0] * 4
    assert one_turn.rollout.truncated.all()  # the environment did not say done
    short = sample(module, MultiTurnSampler(ScriptedEnv, max_turns=3, max_tokens=6))
    assert int(short.rollout.response_mask.sum(-1).max()) <= 6
    assert short.rollout.truncated.all()


@pytest.mark.parametrize("bad", [dict(max_turns=0), dict(max_tokens=-1), dict(step_timeout=0),
                                 dict(environment="no_such_env"), dict(environment={"tools": {"bogus": 1}})])
def test_bad_settings_name_the_setting(bad):
    args = {"environment": ScriptedEnv, **bad}
    with pytest.raises(RlobjInputError):
        MultiTurnSampler(**args)


class EchoEnv(ScriptedEnv):
    """Records the actions it receives."""

    actions: list = []

    def step(self, action):
        EchoEnv.actions.append(action)
        return super().step(action)


def test_stop_strings_cut_turns_and_keep_behaviour_logprobs():
    module = tiny_module(policy={"dtype": "float64"}, rollout={"max_new_tokens": 8, "group_size": 4})
    plain = sample(module, MultiTurnSampler(ScriptedEnv, max_turns=1, max_tokens=64))
    texts = module.decode_responses(plain.rollout)
    stop = next(t[1:3] for t in texts if len(t) >= 4)  # two characters the policy does produce
    EchoEnv.actions = []
    batch = sample(module, MultiTurnSampler(EchoEnv, max_turns=3, max_tokens=64, stop=[stop]))
    r = batch.rollout
    for b in range(len(r)):
        turns = batch.extras["turn_ids"][b]
        for k in range(int(turns.max()) + 1):
            ids = r.response_ids[b][turns == k].tolist()
            text = module.tokenizer.decode(ids, skip_special_tokens=True)
            if stop in text:  # a cut turn ends with the token that completes the stop string
                assert text.endswith(stop), text
                assert stop not in module.tokenizer.decode(ids[:-1], skip_special_tokens=True)
    assert any(a.endswith(stop) for a in EchoEnv.actions)
    with torch.no_grad():
        logp, _ = token_logprobs(module.policy, r.prompt_ids, r.prompt_mask, r.response_ids, r.response_mask)
    action = batch.action_mask()
    assert float((logp - r.logp_rollout).abs()[action].max()) < 1e-5
    with pytest.raises(RlobjInputError, match="stop"):
        MultiTurnSampler(ScriptedEnv, stop="```")


# =========================================================================== hostile environments
# Hostile environments and tool outputs cannot crash or stall the multi-turn sampler.
HOSTILE_RECORDS = [{"prompt": "1+2=", "answer": "3"}]


@pytest.fixture(scope="module")
def module():
    return tiny_module(rollout={"max_new_tokens": 3, "group_size": 2})


@pytest.mark.parametrize("kind", ["huge", "control", "special", "injection"])
def test_hostile_observations_are_bounded(module, kind):
    sampler = MultiTurnSampler(lambda: HostileEnv(kind), max_turns=3, max_tokens=200,
                               max_observation_chars=500, max_observation_tokens=40)
    start = time.monotonic()
    batch = sampler.sample(module.context(0), HOSTILE_RECORDS, 2)
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
    batch = sampler.sample(module.context(0), HOSTILE_RECORDS, 2)
    assert time.monotonic() - start < 15
    assert batch.metrics["rollout/env_timeouts"] == 2.0
    assert batch.extras["num_turns"].tolist() == [1.0, 1.0]  # the timeout ended the episodes
    assert batch.extras["episode_return"].tolist() == [0.0, 0.0]
    assert "did not answer" in sampler.last_transcripts[0][-1][1]


def test_raising_environment_becomes_an_error_observation(module):
    sampler = MultiTurnSampler(lambda: HostileEnv("raise"), max_turns=3, max_tokens=100)
    batch = sampler.sample(module.context(0), HOSTILE_RECORDS, 2)
    assert batch.metrics["rollout/env_errors"] == 2.0
    assert sampler.last_transcripts[0][-1] == ("environment", "error: RuntimeError: boom")
