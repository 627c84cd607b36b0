"""The MCTS sampler (``sampler: mcts``): rows and extras, log-probs, adaptive replay, errors, a YAML run."""

import math
from pathlib import Path

import pytest
import torch

from rlobj.data.tasks import ExactAnswer
from rlobj.ops.errors import RlobjInputError
from rlobj.train.forward import token_logprobs
from rlobj.train.samplers import build_sampler
from rlobj.train.search_samplers import MCTSSampler
from rlobj.train.stages import Batch

from ._helpers import fit_rollout_example, tiny_module

RECORDS = [{"prompt": "12+3=", "answer": "15"}, {"prompt": "7+8=", "answer": "15"}]
SEARCH = {"config": {"width": 2, "max_depth": 3, "step_tokens": 2, "token_budget": 40}, "delimiter": " "}


def policy_logp(module, rollout):
    with torch.no_grad():
        return token_logprobs(module.policy, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                              rollout.response_mask, temperature=module.sampling.temperature)[0]


def test_mcts_sampler_groups_extras_and_logprobs():
    module = tiny_module(sampler={"mcts": SEARCH})
    assert isinstance(module.sampler, MCTSSampler)
    ctx = module.context(0)
    batch = ctx.sample(RECORDS)
    rollout = batch.rollout
    assert len(batch) == 8 and rollout.group_ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [r["prompt"] for r in batch.records] == ["12+3="] * 4 + ["7+8="] * 4
    assert set(batch.extras) == {"node_values", "step_ends"} and batch.on_policy
    assert batch.extras["node_values"].shape == rollout.response_ids.shape
    ends = batch.extras["step_ends"]
    lengths = rollout.response_mask.sum(-1)
    assert ends[torch.arange(8), lengths - 1].all() and not (ends & ~rollout.response_mask).any()
    space = module.encode(" ")[0]  # the delimiter: a step ends at it or after 2 tokens
    for row in range(8):
        tokens = rollout.response_ids[row][rollout.response_mask[row]].tolist()
        cut = ends[row][rollout.response_mask[row]].nonzero().flatten().tolist()
        for start, end in zip([0] + [c + 1 for c in cut[:-1]], cut, strict=True):
            assert len(tokens[start:end + 1]) <= 2 and space not in tokens[start:end]
    torch.testing.assert_close(rollout.logp_rollout, policy_logp(module, rollout), atol=2e-5, rtol=0)
    metrics = batch.metrics
    assert metrics["search/token_budget_per_prompt"] == 40.0
    assert 0 < metrics["search/search_tokens_per_prompt"] <= 40.0
    assert metrics["search/tokens_per_prompt"] == metrics["search/search_tokens_per_prompt"] + \
        metrics["search/fill_tokens_per_prompt"]


def test_adaptive_replay_serves_cached_solutions_and_checkpoints_the_buffer():
    module = tiny_module(sampler={"mcts": {**SEARCH, "replay": {"threshold": 0.5}}})
    sampler = module.sampler
    ctx = module.context(0)
    solution = module.encode("15") + [module.tokenizer.eos_token_id]
    sampler.load_state_dict({"buffer": {"12+3=": [solution]}})
    batch = ctx.sample(RECORDS)
    assert batch.metrics["search/replayed_prompts"] == 1.0 and not batch.on_policy
    replay_rows = [row for row, r in enumerate(batch.records) if r["prompt"] == "12+3="]
    assert len(replay_rows) == 4
    first = batch.rollout.response_ids[replay_rows[0]][batch.rollout.response_mask[replay_rows[0]]].tolist()
    assert first == solution
    # the cached row's log-probs are the policy's (it was not sampled), the others as sampled
    torch.testing.assert_close(batch.rollout.logp_rollout, policy_logp(module, batch.rollout), atol=2e-5, rtol=0)
    value = batch.extras["node_values"][replay_rows[0]][:len(solution)]
    assert torch.allclose(value, torch.full_like(value, 1.0))  # reward 1 -> v = 2 (1 - 0.5)
    state = sampler.state_dict()
    fresh = build_sampler({"mcts": {**SEARCH, "replay": {"threshold": 0.5}}})
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state


def test_search_records_rarely_solved_prompts():
    sampler = MCTSSampler(replay={"threshold": 0.5})
    module = tiny_module(sampler=sampler)
    rollout_rows = module.context(0).sample(RECORDS)
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    sampler.buffer.clear()
    sampler._remember(RECORDS, [0, 1], rewards, rollout_rows.rollout, 4)
    assert list(sampler.buffer) == ["12+3="] and len(sampler.buffer["12+3="]) == 1  # 1/4 <= 0.5 < 3/4


@pytest.mark.parametrize("spec, match", [
    ({"mcts": {"config": {"widht": 2}}}, r"unknown MCTSConfig field\(s\) \['widht'\]"),
    ({"mcts": {"config": {"width": 0}}}, "MCTSConfig.width"),
    ({"mcts": {"delimiter": ""}}, "mcts.delimiter"),
    ({"mcts": {"replay": {"treshold": 0.2}}}, r"mcts.replay: unknown key\(s\) \['treshold'\]"),
    ({"mcts": {"replay": {"threshold": 0.0}}}, "mcts.replay.threshold"),
])
def test_bad_mcts_settings_name_the_key(spec, match):
    with pytest.raises(RlobjInputError, match=match):
        build_sampler(spec)


def test_a_delimiter_of_several_tokens_is_refused():
    module = tiny_module(sampler={"mcts": {"delimiter": "12"}})
    with pytest.raises(RlobjInputError, match="mcts.delimiter: '12' is 2 tokens"):
        module.context(0).sample(RECORDS)


def test_concat_keeps_extras_of_search_and_replay():
    module = tiny_module(sampler={"mcts": SEARCH})
    batch = module.context(0).sample(RECORDS)
    joined = Batch.concat([batch, batch], module.tokenizer.pad_token_id)
    assert joined.extras["node_values"].shape[0] == 16


def test_mcts_yaml_trains_two_rl_steps_through_the_cli(tmp_path, monkeypatch):
    rows = [r for r in fit_rollout_example(tmp_path, monkeypatch, "mcts", "--trainer.callbacks=[]")
            if r.get("phase") == "1.0"]
    assert len(rows) == 2 and all(math.isfinite(float(r["loss"])) for r in rows)
    for row in rows:
        assert 0 < float(row["search/search_tokens_per_prompt"]) <= float(row["search/token_budget_per_prompt"]) == 64


def test_tree_values_provider_is_the_default_and_gives_one_node_trees():
    from rlobj.train.providers import PROVIDERS, TreeValues

    assert PROVIDERS["extras:node_values"] is TreeValues
    module = tiny_module(objective=["tree_value_advantage", "clip_ratio", "token_mean"])
    ctx = module.context(0)
    batch = ctx.score(module.sampler.sample(ctx, RECORDS, 4))  # plain sampling: no node values attached
    rewards = torch.tensor([s.reward for s in batch.scores])
    out = TreeValues().batch(ctx, batch, {"rewards": rewards})["extras:node_values"]
    mask = batch.rollout.response_mask
    torch.testing.assert_close(out, (2 * (rewards - 0.5))[:, None] * mask)
    with pytest.raises(RlobjInputError, match="TreeValues.reward_scale"):
        TreeValues(reward_scale=0.0)
    metrics = module.update_on_batch(batch, ctx)  # the module fills the slot with the default provider
    assert math.isfinite(metrics["loss"])


class CountingVerifier(ExactAnswer):
    """ExactAnswer that counts its calls (one call = one verified response)."""

    calls = 0

    def __call__(self, completion, sample):
        type(self).calls += 1
        return super().__call__(completion, sample)


@pytest.mark.parametrize("replay", [False, True])
def test_each_returned_path_is_verified_once_the_scorer_reuses_the_search_scores(replay):
    spec = {**SEARCH, "replay": {"threshold": 0.5}} if replay else SEARCH
    module = tiny_module(sampler={"mcts": spec}, verifier=CountingVerifier())
    if replay:  # one prompt served from the buffer (plain samples + a cached solution), one searched
        module.sampler.load_state_dict({"buffer": {"12+3=": [module.encode("15") + [module.tokenizer.eos_token_id]]}})
    state = module.sampler.state_dict()
    CountingVerifier.calls = 0
    batch = module.context(0).sample(RECORDS)
    during = CountingVerifier.calls
    assert batch.scores is not None and during >= len(batch)
    texts = module.decode_responses(batch.rollout)
    assert [s.reward for s in batch.scores] == [ExactAnswer()(t, r) for t, r in zip(texts, batch.records)]
    assert batch.metrics["search/rescored_rows"] == 0.0 or replay
    module.sampler.load_state_dict(state)  # the same buffer, the same step: the same search
    CountingVerifier.calls = 0
    metrics = module.rl_update(RECORDS, 0)  # sampler, then the scorer stage, then the update
    assert CountingVerifier.calls == during  # the scorer stage verified nothing again
    assert metrics["verifier/reused_fraction"] == 1.0 and math.isfinite(metrics["loss"])


@pytest.mark.slow
def test_two_gloo_ranks_search_their_own_prompts_and_stay_in_sync(tmp_path):
    import os
    import subprocess
    import sys

    worker = Path(__file__).with_name("ddp_search_worker.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(worker), str(tmp_path / "out")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"out.{r}", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    for step in range(2):  # each rank searched its own half of the step's prompts
        assert not set(ranks[0]["seen"][step]) & set(ranks[1]["seen"][step])
        for r in ranks:
            metrics = r["search"][step]
            assert 0 < metrics["search/search_tokens_per_prompt"] <= metrics["search/token_budget_per_prompt"] == 24
            assert metrics["verifier/reused_fraction"] == 1.0
    fresh = RLModuleWeights()
    moved = 0.0
    for name, weight in ranks[0]["weights"].items():
        torch.testing.assert_close(ranks[1]["weights"][name], weight)  # DDP kept the ranks identical
        moved = max(moved, float((weight - fresh[name]).abs().max()))
    assert moved > 0  # and the weights did train


def RLModuleWeights():
    """The initial weights of the worker's policy (same tiny model, same seed)."""
    from rlobj.ops.tokenizer import build_char_tokenizer
    from rlobj.rollout import build_tiny_qwen2

    model = build_tiny_qwen2(len(build_char_tokenizer()), hidden_size=128, layers=1, heads=2, seed=0)
    return {n: p.detach().clone() for n, p in model.named_parameters()}
