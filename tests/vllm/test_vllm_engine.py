"""VLLMEngine on real vLLM: contract, log-prob agreement with the trainer, in-process weight sync."""

import os

import pytest
import torch
from batches import assert_response_row

from rlobj.rollout import Engine, SamplingConfig, sampling_logprobs, sequence_logprobs
from rlobj.rollout.logprobs import response_logits

pytestmark = pytest.mark.vllm

# vLLM's CPU float32 kernels agree with the HF forward to <= 5e-7 here (measured).
ATOL = 1e-5


def encode(tokenizer, texts):
    return [tokenizer(text)["input_ids"] for text in texts]


def trainer_sampled_logprobs(model, batch, sampling):
    """The sampled distribution recomputed from the HF model: one full forward per batch, then
    temperature / top-k / top-p on each response position's logits."""
    with torch.no_grad():
        logits = response_logits(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                 batch.response_mask)
    rows, steps, vocab = logits.shape
    distribution = sampling_logprobs(logits.reshape(-1, vocab), sampling.temperature,
                                     sampling.top_k, sampling.top_p).reshape(rows, steps, vocab)
    logp = distribution.gather(-1, batch.response_ids[..., None])[..., 0]
    return logp.masked_fill(~batch.response_mask, 0.0)


def assert_matches_hf(model, batch, sampling):
    expected = trainer_sampled_logprobs(model, batch, sampling)
    difference = (expected - batch.logp_rollout).abs().max().item()
    assert difference < ATOL, f"vLLM vs HF log-prob mismatch {difference:.3e}"
    return difference


def test_runs_in_process(engine):
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert isinstance(engine, Engine)
    # the engine core lives in this process (no engine subprocess to talk to)
    assert type(engine.llm.llm_engine.engine_core).__name__ == "InprocClient"


def test_generate_contract(engine, tokenizer):
    prompts = encode(tokenizer, ["12+3=", "7*8=", "100-1="])
    sampling = SamplingConfig(max_new_tokens=12, seed=3)
    batch = engine.generate(prompts, n=4, sampling=sampling)
    assert len(batch) == 12
    assert batch.group_ids.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert batch.prompt_ids.shape == (12, 6)
    for row in range(12):
        prompt = prompts[row // 4]
        assert batch.prompt_ids[row, -len(prompt):].tolist() == prompt
        assert not batch.prompt_mask[row, :6 - len(prompt)].any()
        assert_response_row(batch, row, EOS_ID, max_new_tokens=12)
    # seeded: the same call gives the same samples; samples within a group differ
    again = engine.generate(prompts, n=4, sampling=sampling)
    assert torch.equal(batch.response_ids, again.response_ids)
    assert len({tuple(batch.response_ids[row].tolist()) for row in range(4)}) > 1


EOS_ID = 1


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingConfig(max_new_tokens=16, seed=0),
        SamplingConfig(max_new_tokens=16, temperature=0.7, top_p=0.9, seed=1),
        SamplingConfig(max_new_tokens=16, temperature=1.3, top_k=5, top_p=0.95, seed=2),
        SamplingConfig(max_new_tokens=16, greedy=True),
    ],
    ids=["t1", "t0.7-p0.9", "t1.3-k5-p0.95", "greedy"],
)
def test_logprobs_match_hf_model(engine, hf_model, tokenizer, sampling):
    prompts = encode(tokenizer, ["12+3=", "7*8=", "100-1=", "5="])
    batch = engine.generate(prompts, n=4, sampling=sampling)
    difference = assert_matches_hf(hf_model, batch, sampling)
    print(f"max |logp_vllm - logp_hf| = {difference:.2e}")
    if sampling.top_k == 0 and sampling.top_p == 1.0:
        # without filtering this is exactly what the trainer computes
        with torch.no_grad():
            trainer = sequence_logprobs(hf_model, batch.prompt_ids, batch.prompt_mask,
                                        batch.response_ids, batch.response_mask,
                                        sampling.temperature)
        assert (trainer - batch.logp_rollout).abs().max().item() < ATOL


def test_weight_update_reaches_vllm(engine, hf_model, tokenizer):
    prompts = encode(tokenizer, ["12+3=", "7*8=", "9-4="])
    sampling = SamplingConfig(max_new_tokens=12, seed=5)
    before = engine.generate(prompts, n=4, sampling=sampling)
    assert_matches_hf(hf_model, before, sampling)
    old_logp = trainer_sampled_logprobs(hf_model, before, sampling)
    # an "optimizer step": move every weight, the embedding and output projection included
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in hf_model.parameters():
            parameter.add_(0.05 * parameter.abs().mean()
                           * torch.randn(parameter.shape, generator=generator))
    new_logp = trainer_sampled_logprobs(hf_model, before, sampling)
    assert (new_logp - old_logp).abs().max().item() > 1e-2, "perturbation too small to test"
    engine.update_weights(hf_model.named_parameters())
    after = engine.generate(prompts, n=4, sampling=sampling)
    difference = assert_matches_hf(hf_model, after, sampling)
    print(f"after update: max |logp_vllm - logp_hf| = {difference:.2e}")
    # the same prompts under the same seed no longer follow the old weights' log-probs
    stale = trainer_sampled_logprobs(hf_model, before, sampling)
    assert (stale - before.logp_rollout).abs().max().item() > 1e-2


def test_short_training_loop_through_vllm(engine, hf_model, tokenizer):
    """Three REINFORCE steps: generate with vLLM, log-probs by the trainer, Adam step, push.
    At every step vLLM's logp_rollout equals the trainer's log-probs of the same tokens."""
    prompts = encode(tokenizer, ["1+1=", "2+2=", "3+3="])
    target = tokenizer("4")["input_ids"][0]
    sampling = SamplingConfig(max_new_tokens=6, seed=11)
    optimizer = torch.optim.Adam(hf_model.parameters(), lr=1e-2)
    hf_model.train()
    try:
        for step in range(3):
            batch = engine.generate(prompts, n=4, sampling=sampling)
            logp = sequence_logprobs(hf_model, batch.prompt_ids, batch.prompt_mask,
                                     batch.response_ids, batch.response_mask)
            mismatch = (logp.detach() - batch.logp_rollout).abs().max().item()
            assert mismatch < ATOL, f"step {step}: engine/trainer mismatch {mismatch:.3e}"
            rewards = (batch.response_ids == target).any(-1).float()
            advantages = rewards - rewards.mean()
            loss = -(advantages[:, None] * logp).sum() / batch.response_mask.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            engine.update_weights(hf_model.named_parameters())
    finally:
        hf_model.eval()


def test_sleep_wake(engine, tokenizer):
    if engine.supports_sleep:  # pragma: no cover - GPU platforms only
        engine.sleep()
        with pytest.raises(RuntimeError, match="asleep"):
            engine.generate(encode(tokenizer, ["1="]), n=1,
                            sampling=SamplingConfig(max_new_tokens=2))
        engine.wake()
    else:
        engine.sleep()  # documented no-op on the CPU backend
        engine.wake()
    batch = engine.generate(encode(tokenizer, ["1="]), n=2,
                            sampling=SamplingConfig(max_new_tokens=3, seed=0))
    assert len(batch) == 2


def test_bad_arguments(engine, tokenizer, tmp_path):
    from rlobj.rollout import VLLMEngine

    prompts = encode(tokenizer, ["1="])
    with pytest.raises(ValueError, match="n"):
        engine.generate(prompts, n=0, sampling=SamplingConfig(max_new_tokens=2))
    with pytest.raises(ValueError, match="at least one prompt"):
        engine.generate([], n=1, sampling=SamplingConfig(max_new_tokens=2))
    with pytest.raises(ValueError, match="outside"):
        engine.generate([[len(tokenizer)]], n=1, sampling=SamplingConfig(max_new_tokens=2))
    with pytest.raises(ValueError, match="temperature"):
        engine.generate(prompts, n=1,
                        sampling=SamplingConfig(max_new_tokens=2, greedy=True, temperature=0.5))
    with pytest.raises(ValueError, match="update_weights"):
        engine.update_weights([])
    with pytest.raises(ValueError, match="model_path"):
        VLLMEngine(tmp_path / "missing")
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        VLLMEngine(tmp_path, tensor_parallel_size=0)
