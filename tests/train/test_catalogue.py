"""ReRe: constrained beam search over a catalogue (exact against exhaustive scoring on the tiny
model) and the ranking reward, then 2 RL steps from YAML."""

import math

import pytest
import torch
import yaml

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.catalogue import CatalogueBeamSampler, RankingScorer, _next_logprobs, build_trie
from rlobj.train.cli import run
from rlobj.train.stages import Batch, StepContext

from ._helpers import tiny_module

CATALOGUE = ["7", "8", "12", "17", "71"]


def test_trie_by_hand():
    assert build_trie([[1, 2], [1, 3], [4]]) == {1: {2: {None: True}, 3: {None: True}}, 4: {None: True}}


def _exhaustive(model, prompt, items):
    """Summed log-prob of every item (teacher forcing, one token at a time)."""
    out = {}
    for item in items:
        total = 0.0
        for i, token in enumerate(item):
            total += float(_next_logprobs(model, prompt, [item[:i]])[0, token])
        out[tuple(item)] = total
    return out


def test_beam_search_is_exact_when_as_wide_as_the_catalogue():
    module = tiny_module()
    eos = module.tokenizer.eos_token_id
    items = [module.encode(c) + [eos] for c in CATALOGUE]
    prompt = module.encode("3+4=")
    sampler = CatalogueBeamSampler(CATALOGUE)
    exact = _exhaustive(module.policy, prompt, items)
    ranked = sorted(exact, key=lambda k: -exact[k])
    beams = sampler.beams(module.policy, prompt, build_trie(items), width=len(items))
    assert [tuple(t) for t, _ in beams] == ranked
    for tokens, scores in beams:  # token log-probs are the policy's
        assert sum(scores) == pytest.approx(exact[tuple(tokens)], abs=1e-5)
    top2 = sampler.beams(module.policy, prompt, build_trie(items), width=2)
    assert all(tuple(t) in exact for t, _ in top2) and len({tuple(t) for t, _ in top2}) == 2


def test_sampler_returns_distinct_valid_items_in_rank_order():
    module = tiny_module()
    ctx = module.context(0)
    batch = CatalogueBeamSampler(CATALOGUE).sample(ctx, [{"prompt": "3+4=", "answer": "7"}], n=3)
    texts = module.decode_responses(batch.rollout)
    assert len(texts) == 3 and len(set(texts)) == 3 and set(texts) <= set(CATALOGUE)
    assert batch.extras["beam_rank"].tolist() == [1.0, 2.0, 3.0] and batch.on_policy is False
    sums = (batch.rollout.logp_rollout * batch.rollout.response_mask).sum(-1).tolist()
    assert sums == sorted(sums, reverse=True)
    with pytest.raises(RlobjInputError, match="distinct"):
        CatalogueBeamSampler(["7", "7"])


def test_ranking_reward_by_hand():
    texts = ["8", "7", "12"]
    rollout = batch_from_rows([torch.tensor([1])] * 3, [torch.tensor([ord(c) for c in t]) for t in texts],
                              [torch.zeros(len(t)) for t in texts], [0, 0, 0], [True] * 3, pad_token_id=0)
    batch = Batch(rollout=rollout, records=[{"answer": "7"}] * 3)
    ctx = StepContext(step=0, rl_updates=0, seed=0, rank=0, world_size=1, group_size=3, engine=None, models=None,
                      sample=None, score=None, encode=None,
                      decode=lambda r: ["".join(chr(int(i)) for i, m in zip(row, mask) if m)
                                        for row, mask in zip(r.response_ids.tolist(), r.response_mask.tolist())])
    scores = RankingScorer(weight=0.5)(ctx, batch)
    # rank 1 wrong: -0.5 / log2(2); rank 2 right: 1; rank 3 wrong: -0.5 / log2(4)
    assert [s.reward for s in scores] == [-0.5, 1.0, pytest.approx(-0.25)]
    assert [s.fields["rank"] for s in scores] == [1.0, 2.0, 3.0]
    assert math.isclose(-0.5 / math.log2(4), -0.25)


def test_rere_trains_two_steps_from_yaml(tmp_path):
    catalogue = [str(i) for i in range(0, 19)]
    config = {"seed_everything": 0,
              "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0, "logger": False,
                          "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False,
                          "default_root_dir": str(tmp_path)},
              "model": {"policy": {"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
                        "rollout": {"group_size": 4, "max_new_tokens": 4},
                        "warmup": {"steps": 0, "eval_at_end": False}, "objective": "grpo",
                        "sampler": {"rlobj.train.catalogue.CatalogueBeamSampler": {"catalogue": catalogue}},
                        "scorer": {"class_path": "rlobj.train.catalogue.RankingScorer", "init_args": {"weight": 0.5}},
                        "seed": 0},
              "data": {"train": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 1, "high": 9}},
                       "eval": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 2, "high": 9}},
                       "prompts_per_step": 2, "eval_size": 2}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cli = run(["fit", "--config", str(path)])
    metrics = cli.model.last_metrics
    assert math.isfinite(metrics["loss"]) and cli.model.rl_updates == 2
    texts = cli.model.decode_responses(cli.model.last_batch[0].rollout)
    assert set(texts) <= set(catalogue) and len(texts) == 8
