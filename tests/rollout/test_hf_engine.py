"""HFEngine: shapes, masks, group ids, determinism, sampled-distribution log-probs, truncation."""

import copy
import math

import pytest
import torch
from batches import assert_response_row

from rlobj.rollout import (
    Engine,
    HFEngine,
    RolloutBatch,
    SamplingConfig,
    sampling_logprobs,
    sequence_logprobs,
)

from .conftest import EOS, PAD, VOCAB


def test_shapes_masks_and_group_ids(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    assert isinstance(engine, Engine)
    batch = engine.generate(prompts, n=3, sampling=SamplingConfig(max_new_tokens=10, seed=0))
    assert len(batch) == 12
    assert batch.prompt_ids.shape == (12, 5) and batch.prompt_mask.shape == (12, 5)
    assert batch.response_ids.shape == batch.response_mask.shape == batch.logp_rollout.shape
    assert batch.response_ids.shape[1] <= 10
    assert batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for row in range(12):
        prompt = prompts[row // 3]
        # left padding: the real prompt sits at the right end, padding is PAD and masked
        width = len(prompt)
        assert batch.prompt_ids[row, -width:].tolist() == prompt
        assert batch.prompt_mask[row].tolist() == [False] * (5 - width) + [True] * width
        assert (batch.prompt_ids[row, :5 - width] == PAD).all()
        # right padding: the mask is a prefix; after it come PAD ids and zero log-probs
        # EOS only ever as the last real token; truncated iff no EOS and full length
        length = assert_response_row(batch, row, EOS, max_new_tokens=10)
        assert (batch.response_ids[row, length:] == PAD).all()
        assert (batch.logp_rollout[row, length:] == 0).all()
        assert (batch.logp_rollout[row, :length] <= 0).all()
    assert batch.response_lengths.tolist() == batch.response_mask.sum(-1).tolist()


def test_seed_determinism(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    config = SamplingConfig(max_new_tokens=8, temperature=1.3, seed=123)
    first = engine.generate(prompts, n=2, sampling=config)
    second = engine.generate(prompts, n=2, sampling=config)
    assert torch.equal(first.response_ids, second.response_ids)
    assert torch.equal(first.logp_rollout, second.logp_rollout)
    other = engine.generate(prompts, n=2, sampling=SamplingConfig(max_new_tokens=8,
                                                                  temperature=1.3, seed=124))
    assert not torch.equal(first.response_ids[:, :4], other.response_ids[:, :4])


def slow_rollout_logprobs(model, prompt, response, temperature, top_k, top_p):
    """Reference: for each response token, an unpadded, uncached forward of prompt + prefix,
    then the sampled distribution recomputed by hand."""
    values = []
    with torch.no_grad():
        for step, token in enumerate(response):
            context = torch.tensor([prompt + response[:step]])
            logits = model(input_ids=context).logits[0, -1].double().tolist()
            scaled = [value / temperature for value in logits]
            order = sorted(range(len(scaled)), key=lambda index: -scaled[index])
            kept = order if top_k == 0 else order[:top_k]
            weights = {index: math.exp(scaled[index] - scaled[kept[0]]) for index in kept}
            total = sum(weights.values())
            nucleus, mass = [], 0.0
            for index in kept:
                if nucleus and mass >= top_p:
                    break
                nucleus.append(index)
                mass += weights[index] / total
            assert token in nucleus, "sampled a token outside the sampled distribution"
            values.append(math.log(weights[token] / sum(weights[index] for index in nucleus)))
    return values


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.7, 0, 0.8),
                                                       (1.5, 5, 0.9), (0.9, 3, 1.0)])
def test_logp_rollout_is_the_sampled_distribution(tiny_model, prompts, temperature, top_k, top_p):
    engine = HFEngine(tiny_model)
    config = SamplingConfig(max_new_tokens=6, temperature=temperature, top_k=top_k, top_p=top_p,
                            seed=7)
    batch = engine.generate(prompts[:3], n=2, sampling=config)
    for row in range(len(batch)):
        prompt = batch.prompt_ids[row][batch.prompt_mask[row]].tolist()
        response = batch.response_ids[row][batch.response_mask[row]].tolist()
        expected = slow_rollout_logprobs(tiny_model, prompt, response, temperature, top_k, top_p)
        got = batch.logp_rollout[row, :len(response)]
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32),
                                   atol=1e-5, rtol=0)


def test_sampler_draws_from_the_reported_distribution(tiny_model):
    """Empirical frequencies of one-token responses match exp(logp) of the sampled distribution."""
    engine = HFEngine(tiny_model, eos_token_id=[])
    config = SamplingConfig(max_new_tokens=1, temperature=0.8, top_p=0.7, seed=3)
    draws = 4000
    batch = engine.generate([[3, 4, 5]], n=draws, sampling=config)
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.tensor([[3, 4, 5]])).logits[0, -1:]
    distribution = sampling_logprobs(logits, 0.8, 0, 0.7)[0].exp()
    counts = torch.bincount(batch.response_ids[:, 0], minlength=VOCAB).double() / draws
    assert (counts[distribution == 0] == 0).all()
    # 4 standard errors of a binomial frequency
    bound = 4 * torch.sqrt(distribution.double() * (1 - distribution.double()) / draws) + 1e-3
    assert (counts - distribution.double()).abs().le(bound).all()
    torch.testing.assert_close(batch.logp_rollout[:, 0].exp(),
                               distribution[batch.response_ids[:, 0]], atol=1e-5, rtol=0)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_sequence_logprobs_equals_logp_rollout(tiny_model, prompts, temperature):
    engine = HFEngine(tiny_model)
    batch = engine.generate(prompts, n=3, sampling=SamplingConfig(
        max_new_tokens=12, temperature=temperature, seed=11))
    with torch.no_grad():
        trainer = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                    batch.response_ids, batch.response_mask, temperature)
    torch.testing.assert_close(trainer, batch.logp_rollout, atol=1e-5, rtol=0)


def test_greedy_is_argmax_and_reports_policy_logprobs(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    config = SamplingConfig(max_new_tokens=7, temperature=0.5, greedy=True)
    batch = engine.generate(prompts, n=2, sampling=config)
    again = engine.generate(prompts, n=2, sampling=config)
    assert torch.equal(batch.response_ids, again.response_ids)
    assert torch.equal(batch.response_ids[0::2], batch.response_ids[1::2])
    with torch.no_grad():
        trainer = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                    batch.response_ids, batch.response_mask, 0.5)
    torch.testing.assert_close(trainer, batch.logp_rollout, atol=1e-5, rtol=0)
    row = 0
    prompt = prompts[0]
    response = batch.response_ids[row][batch.response_mask[row]].tolist()
    with torch.no_grad():
        for step, token in enumerate(response):
            logits = tiny_model(input_ids=torch.tensor([prompt + response[:step]])).logits[0, -1]
            assert token == int(logits.argmax())


def test_chunked_decoding_matches(tiny_model, prompts):
    greedy = SamplingConfig(max_new_tokens=6, greedy=True)
    whole = HFEngine(tiny_model).generate(prompts, n=2, sampling=greedy)
    chunked = HFEngine(tiny_model, max_batch_size=3).generate(prompts, n=2, sampling=greedy)
    assert torch.equal(whole.response_ids, chunked.response_ids)
    torch.testing.assert_close(whole.logp_rollout, chunked.logp_rollout, atol=1e-5, rtol=0)
    sampled = HFEngine(tiny_model, max_batch_size=3).generate(
        prompts, n=2, sampling=SamplingConfig(max_new_tokens=6, seed=5))
    with torch.no_grad():
        trainer = sequence_logprobs(tiny_model, sampled.prompt_ids, sampled.prompt_mask,
                                    sampled.response_ids, sampled.response_mask)
    torch.testing.assert_close(trainer, sampled.logp_rollout, atol=1e-5, rtol=0)


def test_truncation_flags(tiny_model, prompts):
    # every token is an EOS: each response is one token long and stopped
    stop_all = HFEngine(tiny_model, eos_token_id=list(range(VOCAB)))
    batch = stop_all.generate(prompts, n=2, sampling=SamplingConfig(max_new_tokens=5, seed=0))
    assert batch.response_ids.shape[1] == 1
    assert not batch.truncated.any() and set(batch.finish_reasons) == {"stop"}
    # no EOS at all: every response runs to max_new_tokens and is truncated
    never_stop = HFEngine(tiny_model, eos_token_id=[])
    batch = never_stop.generate(prompts, n=2, sampling=SamplingConfig(max_new_tokens=5, seed=0))
    assert batch.response_mask.all() and batch.response_ids.shape[1] == 5
    assert batch.truncated.all() and set(batch.finish_reasons) == {"length"}


def test_update_weights(tiny_model, prompts):
    engine_model = copy.deepcopy(tiny_model)
    engine = HFEngine(engine_model)
    trained = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    greedy = SamplingConfig(max_new_tokens=6, greedy=True)
    before = engine.generate(prompts, n=1, sampling=greedy)
    engine.update_weights(trained.named_parameters())
    after = engine.generate(prompts, n=1, sampling=greedy)
    reference = HFEngine(trained).generate(prompts, n=1, sampling=greedy)
    assert torch.equal(after.response_ids, reference.response_ids)
    torch.testing.assert_close(after.logp_rollout, reference.logp_rollout, atol=1e-6, rtol=0)
    assert not torch.allclose(before.logp_rollout, after.logp_rollout)
    # sharing the trainer's own parameters is a no-op, not an error
    engine.update_weights(engine_model.named_parameters())
    with pytest.raises(KeyError, match="not_a_parameter"):
        engine.update_weights([("not_a_parameter", torch.zeros(1))])
    with pytest.raises(ValueError, match="lm_head.weight"):
        engine.update_weights([("lm_head.weight", torch.zeros(3, 3))])


def test_sleep_wake_are_documented_noops(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    assert engine.supports_sleep is False
    engine.sleep()
    engine.wake()
    batch = engine.generate(prompts, n=1, sampling=SamplingConfig(max_new_tokens=2, seed=0))
    assert len(batch) == len(prompts)


def test_restores_training_mode(tiny_model, prompts):
    model = copy.deepcopy(tiny_model).train()
    HFEngine(model).generate(prompts, n=1, sampling=SamplingConfig(max_new_tokens=2, seed=0))
    assert model.training


def test_accepts_tensor_prompts(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    config = SamplingConfig(max_new_tokens=4, seed=2)
    from_lists = engine.generate(prompts, n=2, sampling=config)
    from_tensors = engine.generate([torch.tensor(prompt) for prompt in prompts], n=2,
                                   sampling=config)
    assert torch.equal(from_lists.response_ids, from_tensors.response_ids)


@pytest.mark.parametrize(
    "prompts_arg, n, match",
    [
        ([[3, 4]], 0, "n"),
        ([[3, 4]], -2, "n"),
        ([[3, 4]], 1.5, "n"),
        ([], 2, "at least one prompt"),
        ([[3, 4], []], 2, r"prompts\[1\] is empty"),
        ([[3, VOCAB]], 1, r"prompts\[0\] has token ids outside"),
        ([[3, -1]], 1, r"prompts\[0\] has token ids outside"),
        ([[[3, 4]]], 1, r"prompts\[0\] must be 1-D"),
    ],
)
def test_bad_generate_arguments(tiny_model, prompts_arg, n, match):
    engine = HFEngine(tiny_model)
    with pytest.raises(ValueError, match=match):
        engine.generate(prompts_arg, n=n, sampling=SamplingConfig(max_new_tokens=2))


def test_bad_generate_types(tiny_model):
    engine = HFEngine(tiny_model)
    with pytest.raises(TypeError, match="sampling"):
        engine.generate([[3]], n=1, sampling={"max_new_tokens": 2})
    with pytest.raises(TypeError, match="prompts"):
        engine.generate(torch.tensor([[3, 4]]), n=1, sampling=SamplingConfig(max_new_tokens=2))


def test_bad_engine_arguments(tiny_model):
    with pytest.raises(ValueError, match="eos_token_id"):
        HFEngine(tiny_model, eos_token_id=VOCAB)
    with pytest.raises(ValueError, match="pad_token_id"):
        HFEngine(tiny_model, pad_token_id=-1)
    with pytest.raises(ValueError, match="max_batch_size"):
        HFEngine(tiny_model, max_batch_size=0)


def test_rollout_batch_validates_shapes():
    good = dict(
        prompt_ids=torch.zeros(2, 3, dtype=torch.long),
        prompt_mask=torch.ones(2, 3, dtype=torch.bool),
        response_ids=torch.zeros(2, 4, dtype=torch.long),
        response_mask=torch.ones(2, 4, dtype=torch.bool),
        logp_rollout=torch.zeros(2, 4),
        group_ids=torch.zeros(2, dtype=torch.long),
        truncated=torch.zeros(2, dtype=torch.bool),
        finish_reasons=("stop", "stop"),
    )
    batch = RolloutBatch(**good)
    assert len(batch.to("cpu")) == 2
    with pytest.raises(ValueError, match="logp_rollout"):
        RolloutBatch(**{**good, "logp_rollout": torch.zeros(2, 5)})
    with pytest.raises(ValueError, match="response_mask must be bool"):
        RolloutBatch(**{**good, "response_mask": torch.ones(2, 4)})
    with pytest.raises(ValueError, match="finish_reasons"):
        RolloutBatch(**{**good, "finish_reasons": ("stop",)})


def test_vllm_engine_without_vllm_says_how_to_install(tmp_path, monkeypatch):
    """Where vLLM is absent (the main venv), building a VLLMEngine names the extra to install."""
    import sys

    from rlobj.rollout import VLLMEngine

    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"rlobj\[vllm\]"):
        VLLMEngine(tmp_path)
