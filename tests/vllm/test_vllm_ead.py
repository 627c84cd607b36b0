"""EAD per-position temperatures inside vLLM (ScheduleLogitsProcessor) against the HF model."""

import pytest
import torch

from rlobj.rollout import ConstantTemperature, EADSchedule, SamplingConfig, sampling_logprobs
from rlobj.rollout.logprobs import response_logits
from rlobj.rollout.schedules import scheduled_sequence_logprobs

pytestmark = pytest.mark.vllm

ATOL = 1e-5
# A fast schedule so that 16 tokens cover warm-up, the hot part and the cold floor:
# tau_t = 1 (t < 2), else max(2.2 - exp(t / 3), 0.1) -> 1.2 ... 0.1
FAST = EADSchedule(tau_max=1.2, tau_min=0.1, d0=3.0, slope=1.0, warmup=2, d_scale=1.0)


def encode(tokenizer, texts):
    return [tokenizer(text)["input_ids"] for text in texts]


def scheduled_sampled_logprobs(model, batch, sampling):
    """Plain recomputation: HF logits of each response position divided by tau_t (the formula,
    evaluated here at that position), then temperature / top-k / top-p of the sampled distribution."""
    with torch.no_grad():
        logits = response_logits(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                 batch.response_mask).float()
    width = batch.response_ids.shape[1]
    schedule = sampling.temperature_schedule
    out = torch.zeros(batch.response_ids.shape)
    for t in range(width):
        tau = float(schedule.temperatures(torch.tensor([t]))[0])
        distribution = sampling_logprobs(logits[:, t] / tau, sampling.temperature, sampling.top_k,
                                         sampling.top_p)
        out[:, t] = distribution.gather(-1, batch.response_ids[:, t:t + 1])[:, 0]
    return out.masked_fill(~batch.response_mask, 0.0)


def test_realized_temperatures_equal_the_formula(engine, hf_model, tokenizer):
    prompts = encode(tokenizer, ["12+3=", "7*8=", "100-1="])
    sampling = SamplingConfig(max_new_tokens=16, temperature=0.9, seed=11,
                              temperature_schedule=FAST)
    batch = engine.generate(prompts, n=4, sampling=sampling)
    assert batch.response_mask.sum(-1).max() >= 6, "responses too short to see the schedule"
    with torch.no_grad():
        formula = scheduled_sequence_logprobs(hf_model, batch.prompt_ids, batch.prompt_mask,
                                              batch.response_ids, batch.response_mask, FAST, 0.9)
    assert (formula - batch.logp_rollout).abs().max().item() < ATOL
    # the schedule really acts: the plain-temperature log-probs differ
    with torch.no_grad():
        plain = scheduled_sequence_logprobs(hf_model, batch.prompt_ids, batch.prompt_mask,
                                            batch.response_ids, batch.response_mask,
                                            ConstantTemperature(), 0.9)
    assert (plain - batch.logp_rollout).abs().max().item() > 1e-2


def test_schedule_runs_before_top_k_top_p(engine, hf_model, tokenizer):
    prompts = encode(tokenizer, ["5+5=", "9*9="])
    sampling = SamplingConfig(max_new_tokens=16, temperature=1.1, top_k=6, top_p=0.9, seed=4,
                              temperature_schedule=FAST.at_step(2))
    batch = engine.generate(prompts, n=4, sampling=sampling)
    expected = scheduled_sampled_logprobs(hf_model, batch, sampling)
    assert (expected - batch.logp_rollout).abs().max().item() < ATOL


def test_flat_schedule_equals_plain_sampling(engine, tokenizer):
    prompts = encode(tokenizer, ["12+3=", "4-4="])
    plain = SamplingConfig(max_new_tokens=16, temperature=0.8, seed=21)
    flat = SamplingConfig(max_new_tokens=16, temperature=0.8, seed=21,
                          temperature_schedule=ConstantTemperature(1.0))
    a = engine.generate(prompts, n=4, sampling=plain)
    b = engine.generate(prompts, n=4, sampling=flat)
    assert torch.equal(a.response_ids, b.response_ids)
    assert torch.equal(a.response_mask, b.response_mask)
    assert (a.logp_rollout - b.logp_rollout).abs().max().item() == 0.0
    # and a plain request after scheduled ones is unaffected (no state left in the processor)
    c = engine.generate(prompts, n=4, sampling=plain)
    assert torch.equal(a.response_ids, c.response_ids)


def test_greedy_with_a_schedule_is_refused(engine, tokenizer):
    sampling = SamplingConfig(max_new_tokens=4, greedy=True, temperature_schedule=FAST)
    with pytest.raises(ValueError, match="temperature_schedule needs random sampling"):
        engine.generate(encode(tokenizer, ["1+1="]), n=1, sampling=sampling)


def test_processor_divides_each_scheduled_row_by_its_positions_temperature():
    """ScheduleLogitsProcessor (rlobj/rollout/vllm_ead.py) on its own: rows without a schedule are
    untouched, each scheduled row is divided by tau at its response position; greedy is refused."""
    from vllm import SamplingParams

    from rlobj.rollout.vllm_ead import SCHEDULE_KEY, ScheduleLogitsProcessor

    processor = ScheduleLogitsProcessor(None, torch.device("cpu"), False)
    assert processor.is_argmax_invariant()
    logits = torch.ones(3, 4)
    assert processor.apply(logits) is logits  # nothing scheduled
    processor.requests = {0: (FAST, [7, 7, 7]), 2: (FAST, []), 5: (FAST, [1])}  # row 5 is not in this batch
    out = processor.apply(torch.ones(3, 4))
    tau = FAST.temperatures(torch.tensor([3, 0]))
    torch.testing.assert_close(out[0], torch.full((4,), 1.0 / float(tau[0])))
    torch.testing.assert_close(out[1], torch.ones(4))
    torch.testing.assert_close(out[2], torch.full((4,), 1.0 / float(tau[1])))
    ScheduleLogitsProcessor.validate_params(SamplingParams(temperature=1.0, extra_args={SCHEDULE_KEY: FAST.to_dict()}))
    with pytest.raises(ValueError, match="a temperature schedule needs random sampling"):
        ScheduleLogitsProcessor.validate_params(SamplingParams(temperature=0.0, extra_args={SCHEDULE_KEY: FAST.to_dict()}))
    with pytest.raises(ValueError, match=rf"extra_args\['{SCHEDULE_KEY}'\]"):
        ScheduleLogitsProcessor.validate_params(SamplingParams(temperature=1.0, extra_args={SCHEDULE_KEY: {"kind": "nope"}}))
