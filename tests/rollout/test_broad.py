"""BroRL (arXiv 2510.01180): broad sampling in engine-sized calls, micro-batched objective."""

import pytest
import torch

from rlobj import Objective, dr_grpo, grpo, k3_kl
from rlobj.rollout import HFEngine, SamplingConfig, build_tiny_qwen2, sequence_logprobs
from rlobj.rollout.broad import broad_backward, generate_broad

from .conftest import EOS, PAD, VOCAB


class CountingEngine(HFEngine):
    """HFEngine that records the number of sequences of every call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def generate(self, prompts, n, sampling):
        self.calls.append(len(prompts) * n)
        return super().generate(prompts, n, sampling)


def test_generate_broad_chunks_and_groups(tiny_model, prompts):
    engine = CountingEngine(tiny_model)
    sampling = SamplingConfig(max_new_tokens=5, seed=7)
    batch = generate_broad(engine, prompts[:3], n=12, sampling=sampling, chunk_size=9)
    assert max(engine.calls) <= 9 and sum(engine.calls) == 36
    assert batch.group_ids.tolist() == [g for g in range(3) for _ in range(12)]
    for row in range(len(batch)):  # each row's prompt is its group's prompt
        prompt = batch.prompt_ids[row][batch.prompt_mask[row]].tolist()
        assert prompt == prompts[int(batch.group_ids[row])]
    with torch.no_grad():
        want = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                 batch.response_ids, batch.response_mask)
    assert torch.allclose(batch.logp_rollout, want, atol=2e-5)
    again = generate_broad(engine, prompts[:3], n=12, sampling=sampling, chunk_size=9)
    assert torch.equal(again.response_ids, batch.response_ids)  # reproducible
    # calls use distinct seeds: the 12 samples of a group are not 4 copies of the same 3
    first = batch.response_ids[:12]
    assert len({tuple(r.tolist()) for r in first}) > 3
    # more prompts than chunk_size: prompts are chunked too
    engine.calls.clear()
    small = generate_broad(engine, prompts, n=3, sampling=sampling, chunk_size=2)
    assert max(engine.calls) <= 2 and len(small) == 12
    assert small.group_ids.tolist() == [g for g in range(4) for _ in range(3)]


def test_generate_broad_bad_chunk(tiny_model, prompts):
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1"):
        generate_broad(HFEngine(tiny_model), prompts, 4, SamplingConfig(max_new_tokens=2), 0)


@pytest.mark.parametrize("objective", [grpo, dr_grpo, grpo >> k3_kl(beta=0.1)],
                         ids=["grpo", "dr_grpo", "grpo_k3"])
def test_accumulated_gradient_equals_whole_batch(objective, prompts):
    model = build_tiny_qwen2(vocab_size=VOCAB, hidden_size=64, heads=2, seed=1, eos_token_id=EOS,
                             pad_token_id=PAD)
    engine = HFEngine(model)
    batch = generate_broad(engine, prompts[:2], n=12, sampling=SamplingConfig(
        max_new_tokens=6, seed=0), chunk_size=8)
    rewards = (batch.response_ids[:, 0] % 2 == 0).float()
    with torch.no_grad():
        old = sequence_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                batch.response_mask)
    ref = old + 0.05 * torch.randn(old.shape, generator=torch.Generator().manual_seed(0))
    ref = ref.masked_fill(~batch.response_mask, 0.0)
    params = [p for p in model.parameters() if p.requires_grad]
    # whole batch at once
    model.zero_grad()
    logp = sequence_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                             batch.response_mask)
    out = Objective(objective)(logp=logp, logp_old=old, logp_ref=ref, mask=batch.response_mask,
                               rewards=rewards, group_ids=batch.group_ids,
                               extras={"logp_rollout": batch.logp_rollout})
    out.loss.backward()
    whole = [p.grad.clone() for p in params]
    # micro-batches of 5 sequences (uneven last one)
    model.zero_grad()
    seen = []
    def forward(part):
        seen.append(len(part))
        return sequence_logprobs(model, part.prompt_ids, part.prompt_mask, part.response_ids,
                                 part.response_mask)
    result = broad_backward(objective, model, batch, rewards, micro_batch_size=5, logp_ref=ref,
                            forward=forward)
    assert max(seen) <= 5 and result.micro_batches == 5
    assert float(result.loss) == pytest.approx(float(out.loss.detach()), abs=1e-6)
    for a, b in zip(whole, (p.grad for p in params), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    assert any(float(g.abs().max()) > 0 for g in whole)


def test_broad_backward_errors(tiny_model, prompts):
    from rlobj import entropy_bonus

    batch = HFEngine(tiny_model).generate(prompts[:1], 2, SamplingConfig(max_new_tokens=2, seed=0))
    with pytest.raises(ValueError, match="rewards must have shape"):
        broad_backward(grpo, tiny_model, batch, torch.zeros(3), micro_batch_size=1)
    with pytest.raises(ValueError, match="micro_batch_size must be an int >= 1"):
        broad_backward(grpo, tiny_model, batch, torch.zeros(2), micro_batch_size=0)
    with pytest.raises(ValueError, match="reads 'entropy'"):
        broad_backward(grpo >> entropy_bonus(coef=0.01), tiny_model, batch, torch.zeros(2), 1)
