"""BroRL (arXiv 2510.01180): broad sampling in engine-sized calls, micro-batched objective."""

import torch

from rlobj.rollout import HFEngine, SamplingConfig, sequence_logprobs
from rlobj.rollout.broad import generate_broad


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
