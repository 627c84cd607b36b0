"""EAD temperature schedules (arXiv 2510.05251) and their use inside HFEngine's sampling loop."""

import math
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.rollout import HFEngine, SamplingConfig, sequence_logprobs
from rlobj.rollout import hf_engine as hf_engine_module
from rlobj.rollout.schedules import (
    ConstantTemperature,
    EADSchedule,
    ead_temperatures,
    schedule_from_dict,
    scheduled_sequence_logprobs,
)

# A fast-cooling schedule so that a handful of tokens covers warm-up, annealing and the floor.
FAST = EADSchedule(tau_max=1.5, tau_min=0.3, d0=1.0, slope=1.0, warmup=2, d_scale=4.0)


def reference_tau(t, step, tau_max, tau_min, d0, slope, cap, warmup, d_scale):
    """The formula of spec §10.1, one position at a time."""
    if t < warmup:
        return 1.0
    d = d_scale * min(d0 + slope * step, cap)
    return max(1.0 + tau_max - math.exp(min(t / d, 700.0)), tau_min)


def test_ead_hand_values():
    # defaults: d = 20 * 25 = 500 tokens
    tau = ead_temperatures(400).tolist()
    assert tau[:10] == [1.0] * 10
    assert tau[10] == pytest.approx(2.2 - math.exp(10 / 500), abs=1e-12)  # 1.17980
    assert tau[91] == pytest.approx(1.0004, abs=1e-3)
    assert tau[371] == pytest.approx(0.1) and tau[399] == pytest.approx(0.1)
    # step 3: d = 20 * (25 + 15) = 800
    assert EADSchedule(step=3).decay == 800.0
    assert EADSchedule(step=10**9).decay == 20 * 40000.0  # capped
    # FAST: d = 4 * (1 + 0) = 4
    assert FAST.temperatures(torch.arange(5)).tolist() == pytest.approx(
        [1.0, 1.0, 2.5 - math.exp(0.5), 2.5 - math.exp(0.75), 0.3])


@settings(max_examples=25)
@given(step=st.integers(0, 50), tau_max=st.floats(0.2, 3.0), frac=st.floats(0.01, 1.0),
       d0=st.floats(0.5, 200.0), slope=st.floats(0.0, 20.0), warmup=st.integers(0, 20),
       d_scale=st.floats(0.5, 30.0))
def test_ead_matches_loop_reference_and_properties(step, tau_max, frac, d0, slope, warmup,
                                                   d_scale):
    tau_min = tau_max * frac
    cap = d0 * 10
    args = dict(step=step, tau_max=tau_max, tau_min=tau_min, d0=d0, slope=slope, cap=cap,
                warmup=warmup, d_scale=d_scale)
    got = ead_temperatures(300, **args).tolist()
    want = [reference_tau(t, **args) for t in range(300)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    after = got[warmup:]
    assert all(tau_min - 1e-12 <= v <= tau_max + 1e-12 for v in after)
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:], strict=False))  # non-increasing
    later = ead_temperatures(300, **{**args, "step": step + 5}).tolist()
    assert all(b >= a - 1e-12 for a, b in zip(got, later, strict=True))  # slower cooling
    assert ead_temperatures(100000, **args)[-1].item() == pytest.approx(tau_min)  # reaches floor


def test_schedule_values_round_trip_and_pickle():
    for schedule in (FAST, EADSchedule().at_step(7), ConstantTemperature(0.7)):
        assert schedule_from_dict(schedule.to_dict()) == schedule
        assert pickle.loads(pickle.dumps(schedule)) == schedule
    assert EADSchedule().at_step(7).step == 7


@pytest.mark.parametrize("kwargs, message", [
    (dict(tau_min=2.0, tau_max=1.0), "tau_min must be <= tau_max"),
    (dict(tau_min=0.0), "tau_min must be > 0"),
    (dict(d0=0.0), "d0 must be > 0"),
    (dict(warmup=-1), "warmup must be an int >= 0"),
    (dict(step=1.5), "step must be an int >= 0"),
    (dict(cap=1.0), "cap must be >= d0"),
    (dict(tau_max=float("nan")), "tau_max must be a finite number"),
])
def test_ead_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EADSchedule(**kwargs)


def test_sampling_config_rejects_non_schedule():
    with pytest.raises(ValueError, match="temperature_schedule must be a TemperatureSchedule"):
        SamplingConfig(max_new_tokens=4, temperature_schedule=lambda t: 1.0)
    with pytest.raises(ValueError, match="kind in"):
        schedule_from_dict({"kind": "nope"})
    with pytest.raises(ValueError, match="ConstantTemperature.value must be > 0"):
        ConstantTemperature(0.0)


def test_realized_temperature_equals_formula(tiny_model, prompts, monkeypatch):
    """Spy on the logits handed to the sampler: z_t / (logits seen) = tau_t at every step."""
    seen = []
    original = hf_engine_module.sampling_logprobs

    def spy(logits, temperature, top_k, top_p):
        seen.append((logits.detach().clone(), temperature))
        return original(logits, temperature, top_k, top_p)

    monkeypatch.setattr(hf_engine_module, "sampling_logprobs", spy)
    engine = HFEngine(tiny_model, eos_token_id=[], pad_token_id=0)  # no EOS: every step runs
    sampling = SamplingConfig(max_new_tokens=6, temperature=0.8, seed=3,
                              temperature_schedule=FAST.at_step(2))
    batch = engine.generate(prompts, n=2, sampling=sampling)
    assert len(seen) == 6
    # raw logits at every response position, from one full forward
    with torch.no_grad():
        ids = torch.cat([batch.prompt_ids, batch.response_ids], 1)
        mask = torch.cat([batch.prompt_mask, batch.response_mask], 1)
        from rlobj.rollout import positions_from_mask
        raw = tiny_model(input_ids=ids, attention_mask=mask.long(),
                         position_ids=positions_from_mask(mask)).logits[:, -7:-1].float()
    expected = FAST.at_step(2).temperatures(torch.arange(6))
    for t, (logits, temperature) in enumerate(seen):
        assert temperature == 0.8
        ratio = raw[:, t] / logits  # = tau_t wherever logits are not tiny
        keep = raw[:, t].abs() > 1e-2
        realized = ratio[keep]
        assert torch.allclose(realized, torch.full_like(realized, float(expected[t])),
                              rtol=1e-3), (t, realized.min(), realized.max(), expected[t])


def test_logp_rollout_is_the_annealed_distribution(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    schedule = FAST.at_step(1)
    batch = engine.generate(prompts, n=3, sampling=SamplingConfig(
        max_new_tokens=7, temperature=0.9, seed=11, temperature_schedule=schedule))
    with torch.no_grad():
        recomputed = scheduled_sequence_logprobs(
            tiny_model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
            batch.response_mask, schedule, temperature=0.9)
        plain = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                  batch.response_ids, batch.response_mask, temperature=0.9)
    assert torch.allclose(batch.logp_rollout, recomputed, atol=2e-5)
    # the annealed positions really differ from the plain temperature's log-probs
    annealed = batch.response_mask[:, 2:]
    assert (batch.logp_rollout[:, 2:] - plain[:, 2:])[annealed].abs().max() > 1e-2
    # warm-up positions (tau = 1) agree with the plain temperature
    assert torch.allclose(batch.logp_rollout[:, :2], plain[:, :2], atol=2e-5)


@pytest.mark.parametrize("flat", [ConstantTemperature(1.0), EADSchedule(warmup=100)])
@pytest.mark.parametrize("top_p, top_k", [(1.0, 0), (0.8, 5)])
def test_flat_schedule_is_plain_sampling(tiny_model, prompts, flat, top_p, top_k):
    engine = HFEngine(tiny_model)
    base = dict(max_new_tokens=8, temperature=1.0, top_p=top_p, top_k=top_k, seed=5)
    plain = engine.generate(prompts, n=3, sampling=SamplingConfig(**base))
    scheduled = engine.generate(prompts, n=3, sampling=SamplingConfig(
        **base, temperature_schedule=flat))
    assert torch.equal(plain.response_ids, scheduled.response_ids)
    assert torch.equal(plain.response_mask, scheduled.response_mask)
    assert torch.equal(plain.logp_rollout, scheduled.logp_rollout)


def test_cold_schedule_is_greedy(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    greedy = engine.generate(prompts, n=1, sampling=SamplingConfig(max_new_tokens=6, greedy=True))
    cold = engine.generate(prompts, n=2, sampling=SamplingConfig(
        max_new_tokens=6, seed=1, temperature_schedule=ConstantTemperature(1e-4)))
    assert torch.equal(cold.response_ids[::2], greedy.response_ids)
    assert torch.equal(cold.response_ids[1::2], greedy.response_ids)


def test_offsets_shift_the_schedule(tiny_model, prompts):
    """decode_rows(offsets=k) anneals as if k response tokens came before."""
    engine = HFEngine(tiny_model, eos_token_id=[])
    from rlobj.rollout import left_pad_prompts
    ids, mask = left_pad_prompts(prompts, 0)
    sampling = SamplingConfig(max_new_tokens=3, seed=2, temperature_schedule=FAST)
    offsets = torch.tensor([0, 1, 2, 3])
    out_ids, out_mask, logp, _ = engine.decode_rows(ids, mask, sampling,
                                                    torch.Generator().manual_seed(2), offsets)
    with torch.no_grad():
        want = scheduled_sequence_logprobs(tiny_model, ids, mask, out_ids, out_mask, FAST,
                                           offsets=offsets)
    assert torch.allclose(logp, want, atol=2e-5)
    with pytest.raises(ValueError, match="offsets must have shape"):
        engine.decode_rows(ids, mask, sampling, None, torch.zeros(2, dtype=torch.long))


def test_truncated_is_on_annealed_samples(tiny_model, prompts):
    """EAD's optional TIS correction = truncated_is with extras['logp_rollout'] (spec §10.2 A)."""
    from rlobj import Objective, grpo, truncated_is

    engine = HFEngine(tiny_model)
    batch = engine.generate(prompts[:2], n=4, sampling=SamplingConfig(
        max_new_tokens=6, seed=4, temperature_schedule=FAST))
    with torch.no_grad():
        logp_old = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                     batch.response_ids, batch.response_mask)
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    cap = 1.0  # truncates exactly the tokens the annealing made less likely than the policy
    out = Objective(grpo >> truncated_is(cap=cap))(
        logp=logp_old, logp_old=logp_old, mask=batch.response_mask, rewards=rewards,
        group_ids=batch.group_ids, extras={"logp_rollout": batch.logp_rollout})
    weight = torch.clamp(torch.exp(logp_old - batch.logp_rollout), max=cap)
    want = weight[batch.response_mask].mean()
    assert float(out.metrics["is/weight_mean"]) == pytest.approx(float(want), rel=1e-5)
    assert 0 < float(out.metrics["is/truncated_frac"]) < 1  # the annealing is off-policy
