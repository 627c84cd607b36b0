"""The MCTS search through the real vLLM CPU engine: rows, step cuts, log-probs against the HF model."""

import pytest
import torch

from rlobj.rollout import SamplingConfig, sequence_logprobs
from rlobj.rollout.mcts import MCTSConfig
from rlobj.rollout.mcts_engine import mcts_rollouts

pytestmark = pytest.mark.vllm

ATOL = 1e-5


@pytest.mark.parametrize("scope", ["tree", "global"])
def test_mcts_paths_through_vllm_have_the_hf_logprobs_and_cut_at_the_delimiter(engine, hf_model, tokenizer, scope):
    prompts = [tokenizer("12+3=")["input_ids"], tokenizer("7*8=")["input_ids"]]
    delimiter = tokenizer("+")["input_ids"][0]
    config = MCTSConfig(width=2, max_depth=3, step_tokens=3, delimiter_ids=(delimiter,), token_budget=30,
                        frontier_scope=scope)
    sampling = SamplingConfig(max_new_tokens=8, temperature=0.9, seed=5)
    calls = []

    def score(rows):
        calls.append(len(rows))
        return [1.0 if delimiter in tokens else 0.0 for _, tokens, _ in rows]

    result = mcts_rollouts(engine, prompts, 3, sampling, config, score)
    batch = result.rollout.to("cpu")
    assert len(batch) == 6 and batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1] and calls
    with torch.no_grad():
        want = sequence_logprobs(hf_model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                 batch.response_mask, temperature=0.9)
    assert (batch.logp_rollout - want).abs().max().item() < ATOL
    for row in range(len(batch)):
        tokens = batch.response_ids[row][batch.response_mask[row]].tolist()
        ends = result.step_ends[row].cpu()[batch.response_mask[row]]
        starts = [0] + [k + 1 for k in ends.nonzero().flatten().tolist()[:-1]]
        for start, end in zip(starts, ends.nonzero().flatten().tolist(), strict=True):
            step = tokens[start:end + 1]
            assert delimiter not in step[:-1] and len(step) <= 3
    for tree in result.trees:
        assert tree.stats.search_tokens <= 30
