"""MCTS rollouts through the HF engine (rlobj/rollout/mcts_engine.py): rows, log-probs, budgets."""

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import EADSchedule, HFEngine, SamplingConfig, sequence_logprobs
from rlobj.rollout.mcts import MCTSConfig
from rlobj.rollout.mcts_engine import cut_step, mcts_rollouts

from .conftest import EOS

DELIMITER = 5


def score_by_token(rows):
    """A toy verifier: reward 1 when the response contains token 7."""
    return [1.0 if 7 in tokens else 0.0 for _, tokens, _ in rows]


@pytest.mark.parametrize("evaluation", ["terminal", "rollout"])
def test_paths_logprobs_equal_recomputed_and_values_follow_the_steps(tiny_model, prompts, evaluation):
    engine = HFEngine(tiny_model)
    config = MCTSConfig(width=2, max_depth=3, step_tokens=3, delimiter_ids=(DELIMITER,), evaluation=evaluation)
    sampling = SamplingConfig(max_new_tokens=8, temperature=0.9, seed=3)
    result = mcts_rollouts(engine, prompts[:3], 3, sampling, config, score_by_token)
    batch = result.rollout
    assert len(batch) == 9 and batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with torch.no_grad():
        want = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                 batch.response_mask, temperature=0.9)
    assert torch.allclose(batch.logp_rollout, want, atol=2e-5)
    assert (batch.logp_rollout[~batch.response_mask] == 0).all()
    for row in range(len(batch)):
        tree = result.trees[int(batch.group_ids[row])]
        tokens = batch.response_ids[row][batch.response_mask[row]].tolist()
        assert result.rewards[row] == score_by_token([(0, tokens, True)])[0]
        assert len(tokens) <= 8 and EOS not in tokens[:-1]
        ends = result.step_ends[row][batch.response_mask[row]]
        assert ends[-1]
        # every step but the last ends at the delimiter or after step_tokens tokens
        starts = [0] + [k + 1 for k in ends.nonzero().flatten().tolist()[:-1]]
        for start, end in zip(starts, ends.nonzero().flatten().tolist(), strict=True):
            step = tokens[start:end + 1]
            assert DELIMITER not in step[:-1] and len(step) <= 3
        leaf = next(i for i in tree.chosen if tree.path_tokens(i) == tokens)
        values = result.node_values[row][batch.response_mask[row]].tolist()
        assert values == pytest.approx([node.value for node in tree.path(leaf) for _ in node.tokens])
    for tree in result.trees:  # the budget report: every sampled token, kept or cut
        assert tree.stats.search_tokens >= sum(len(n.tokens) for n in tree.nodes)
        assert tree.stats.stop in ("paths", "exhausted")


def test_token_budget_is_respected_and_reported(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    config = MCTSConfig(width=2, max_depth=4, step_tokens=2, token_budget=9)
    result = mcts_rollouts(engine, prompts[:2], 4, SamplingConfig(max_new_tokens=8, seed=0), config, score_by_token)
    assert len(result.rollout) == 8
    for tree in result.trees:
        assert tree.stats.search_tokens <= 9 and tree.stats.stop in ("token_budget", "paths")
        assert tree.stats.fill_tokens >= 0


def test_cut_step_and_errors(tiny_model, prompts):
    assert cut_step([4, 5, 6], [-1.0, -2.0, -3.0], [9], room=2, eos_finished=True) == ([4, 5], [-1.0, -2.0], False)
    assert cut_step([4, 1], [-1.0, -2.0], [5], room=5, eos_finished=True) == ([4, 1], [-1.0, -2.0], True)
    engine = HFEngine(tiny_model)
    schedule = SamplingConfig(max_new_tokens=4, temperature_schedule=EADSchedule())
    with pytest.raises(RlobjInputError, match="temperature_schedule"):
        mcts_rollouts(engine, prompts[:1], 2, schedule, MCTSConfig(), score_by_token)
    with pytest.raises(RlobjInputError, match="no prompts"):
        mcts_rollouts(engine, [], 2, SamplingConfig(max_new_tokens=4), MCTSConfig(), score_by_token)
