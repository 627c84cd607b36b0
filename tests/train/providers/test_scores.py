"""Providers of rlobj/train/providers/scores.py: hand-checked values on small text batches, and one
training update through each consuming term; random draws follow rows, not positions (with
steps.py's ReasoningSteps among the providers checked)."""

import math

import pytest
import torch
from train._helpers import synthetic_rewards, synthetic_rollout, tiny_module
from train.providers._text_batches import ADD, run, text_batch, trains, weights

from rlobj import (
    aepo_reward,
    backward_correction,
    brpo_advantage,
    co_reward,
    conciseness_reward,
    fn_rate_from_appeals,
    gcpo_reward,
    group_zscore,
    grpo,
    leave_one_out,
    multi_reward_advantage,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.train.providers import (
    AepoCandidates,
    AnswerIds,
    AppealCheck,
    AuxConstruction,
    ConcisenessScore,
    PairwiseJudge,
    ReasoningSteps,
    RewardComponents,
    resolve_providers,
)
from rlobj.train.providers.scores import answer_key, row_generator, row_keys


# --------------------------------------------------------------------------- AnswerIds
def test_answer_ids_hash_canonical_answers_and_pair_views(module):
    records = [{**ADD[0], "question_id": "q0"}, {**ADD[0], "prompt": "3+2=", "question_id": "q0"},
               {**ADD[1], "question_id": "q1"}, ADD[2]]
    texts = ["2+3=5", "5", "", "05", "5", "6", "5", "=", "8", "8", "8", "8", "3", "3", "1", "3"]
    out = run(AnswerIds(), module, text_batch(module, texts, records))
    ids = out["extras:answer_ids"]
    assert ids.dtype == torch.long and ids.shape == (16,)
    assert ids[0] == ids[1] == ids[3] == ids[4] == ids[6] == answer_key("5")  # "05" is the number 5
    assert ids[2] == ids[7] == -1 and ids[5] != ids[0] and ids[8] == answer_key("8")
    assert out["extras:partner_group"].tolist() == [1] * 4 + [0] * 4 + [2] * 4 + [3] * 4


def test_answer_ids_scorer_fields_win(module):
    fields = [{"answer_ids": row % 3, "partner_group": row // 4} for row in range(8)]
    out = run(AnswerIds(), module, text_batch(module, ["5"] * 8, ADD, fields=fields))
    assert out["extras:answer_ids"].tolist() == [row % 3 for row in range(8)]
    assert out["extras:partner_group"].tolist() == [0] * 4 + [1] * 4


def test_co_reward_trains_from_answer_ids():
    module = tiny_module(objective=co_reward() >> grpo, update=dict(micro_batch_size=4))
    records = [{**ADD[0], "question_id": "a"}, {**ADD[0], "prompt": "3+2=", "question_id": "a"}, ADD[1], ADD[2]]
    texts = ["5", "5", "6", "5", "5", "7", "5", "6", "8", "8", "9", "1", "3", "4", "3", "3"]
    metrics = trains(module, text_batch(module, texts, records), "co_reward/mean")
    # group 0 vs vote "5" of group 1: 3 of 4; group 1 vs group 0's "5": 2; group 2 self: 2; group 3 self: 3
    assert metrics["co_reward/mean"] == pytest.approx(10 / 16)


# --------------------------------------------------------------------------- AppealCheck
def test_appeal_check_flips_lenient_matches_of_negatives(module):
    texts = ["5", "2+3=5", "6", "= 5 =", "8", "08", "9", "8"]
    rewards = [1, 0, 0, 0, 1, 0, 0, 0]
    out = run(AppealCheck(q=1.0), module, text_batch(module, texts, ADD, rewards=rewards))
    assert out["extras:appeal_flipped"].tolist() == [False, True, False, True, False, True, False, True]


def test_appeal_check_draws_q_per_row_from_the_term(module):
    texts = ["2+3=5"] * 16
    batch = text_batch(module, texts, ADD * 1 + [ADD[0]] * 3, rewards=[0.0] * 16)
    provider = AppealCheck()
    out = run(provider, module, batch, terms=[fn_rate_from_appeals(q=0.4)])
    assert provider.q == 0.4
    ctx = module.context(0)
    keys = row_keys(batch.rollout)
    expected = [float(torch.rand((), generator=row_generator(0, ctx.seed, ctx.step, keys[row]))) < 0.4
                for row in range(16)]
    gold_five = [batch.records[row]["answer"] == "5" for row in range(16)]
    assert out["extras:appeal_flipped"].tolist() == [e and g for e, g in zip(expected, gold_five)]


def test_fn_rate_from_appeals_trains_with_appeals():
    objective = (fn_rate_from_appeals(q=1.0) >> backward_correction(rho0=0.0, rho1=None)
                 >> grpo.replace(group_zscore, leave_one_out()))
    module = tiny_module(objective=objective, update=dict(micro_batch_size=4))
    texts = ["5", "2+3=5", "6", "4", "8", "7", "8", "1+7=8", "3", "2", "3", "3", "7", "1", "6+1=7", "7"]
    metrics = trains(module, text_batch(module, texts, ADD), "noisy/rho1_step")
    flipped, positives = 3, 8
    assert metrics["noisy/rho1_step"] == pytest.approx((flipped + 1e-5) / (flipped + positives + 2e-5))


# --------------------------------------------------------------------------- AEPO
def test_aepo_candidates_counts_ranks_and_format(module):
    texts = ["5 7", "7 5", "3", "", "8", "1 2 8", "8+8", "1 2 3 4 5 6 7 8 9"]
    out = run(AepoCandidates(), module, text_batch(module, texts, ADD))
    assert out["extras:candidate_count"].tolist() == [2, 2, 1, 0, 1, 3, 1, 9]
    assert out["extras:first_hit_rank"].tolist() == [1, 2, 0, 0, 1, 3, 0, 8]
    assert out["extras:format_valid"].tolist() == [True, True, True, False, True, True, False, False]


def test_aepo_reward_trains_from_candidates():
    module = tiny_module(objective=aepo_reward() >> grpo, update=dict(micro_batch_size=4))
    texts = ["5", "3 5", "", "1", "8", "8 8", "0", "4", "3", "1 3", "2", "", "7", "7 1", "2 7", "6"]
    metrics = trains(module, text_batch(module, texts, ADD), "aepo/hit_frac")
    assert metrics["aepo/hit_frac"] == pytest.approx(9 / 16)


# --------------------------------------------------------------------------- conciseness
def test_conciseness_is_group_relative_length(module):
    texts = ["5", "55", "5555", "5555", "8", "", "88", "8"]
    out = run(ConcisenessScore(floor=0.1), module, text_batch(module, texts, ADD))
    # token lengths (EOS included): 2 3 5 5 | 2 1 3 2
    expected = [1.0, 0.1 + 0.9 * 2 / 3, 0.1 + 0.9 * 2 / 5, 0.1 + 0.9 * 2 / 5, 0.1 + 0.9 / 2, 1.0, 0.1 + 0.9 / 3, 0.55]
    assert torch.allclose(out["extras:conciseness"], torch.tensor(expected))


def test_conciseness_reward_trains():
    module = tiny_module(objective=conciseness_reward() >> grpo, update=dict(micro_batch_size=4))
    rollout = synthetic_rollout(module)
    before = weights(module)
    metrics = module.update_on_rollout(rollout, synthetic_rewards(16))
    assert "crf/bonus" in metrics and metrics["crf/bonus"] > 0
    assert all(math.isfinite(float(v)) for v in metrics.values())
    assert float((weights(module) - before).abs().max()) > 0


# --------------------------------------------------------------------------- GCPO
def test_aux_construction_patterns(module):
    texts = ["2+3=5", "5", "1+1+3", "5"]
    out = run(AuxConstruction(patterns=[r"\+"]), module, text_batch(module, texts, ADD[:1]))
    assert out["extras:uses_aux"].tolist() == [True, False, True, False]
    assert not run(AuxConstruction(), module, text_batch(module, texts, ADD[:1]))["extras:uses_aux"].any()
    given = run(AuxConstruction(), module, text_batch(module, texts, ADD[:1], fields=[{"uses_aux": 1}] * 4))
    assert given["extras:uses_aux"].all()


def test_gcpo_reward_trains_with_aux_from_yaml_provider():
    module = tiny_module(objective=gcpo_reward(length_target=6.0) >> grpo, update=dict(micro_batch_size=4),
                         providers=[{"AuxConstruction": {"patterns": [r"\+"]}}])
    texts = ["2+3=5", "2+3=5", "4", "6", "8", "4+4", "8", "3", "3", "1+2=3", "1", "2", "7", "7", "6+1", "0"]
    metrics = trains(module, text_batch(module, texts, ADD,
                                        rewards=[1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0]), "gcpo/aux_frac")
    assert metrics["gcpo/aux_frac"] == pytest.approx(5 / 16)
    # group 0: aux rows all correct, others not: +1; group 1: -1; group 2: +1 (1 vs 1/3); group 3: -1 (0 vs 2/3)
    assert metrics["gcpo/mask_mean"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- reward components
def test_reward_components_columns(module):
    texts = ["5", "5 5", "", "12"]
    fields = [{"style": 0.25 * row} for row in range(4)]
    out = run(RewardComponents(components=["verifier", "format", "length", "style"]), module,
              text_batch(module, texts, ADD[:1], rewards=[1, 0, 0, 1], fields=fields))
    values = out["extras:reward_components"]
    assert values.shape == (4, 4) and values.dtype == torch.float32
    budget = module.context(0).sampling.max_new_tokens
    lengths = torch.tensor([2.0, 4.0, 1.0, 3.0])
    expected = torch.stack([torch.tensor([1.0, 0, 0, 1]), torch.tensor([1.0, 0, 0, 1]),
                            (1 - lengths / budget).clamp(0, 1), torch.tensor([0, 0.25, 0.5, 0.75])], -1)
    assert torch.allclose(values, expected)
    scorer_format = run(RewardComponents(), module, text_batch(module, texts, ADD[:1], fields=[{"format": 0.5}] * 4))
    assert bool((scorer_format["extras:reward_components"][:, 1] == 0.5).all())


def test_reward_components_check_the_term_weights():
    with pytest.raises(RlobjInputError, match="2 weights"):
        resolve_providers((multi_reward_advantage(weights=(1.0, 1.0)),))
    with pytest.raises(RlobjInputError, match="style"):
        run(RewardComponents(components=["verifier", "style"]), tiny_module(), text_batch(tiny_module(), ["5"] * 4, ADD))


def test_multi_reward_advantage_trains_from_components():
    module = tiny_module(objective=grpo.replace(group_zscore, multi_reward_advantage()), update=dict(micro_batch_size=4))
    texts = ["5", "5 5", "55", "2+3=5", "8", "8", "9", "1 8", "3", "33", "3", "0", "7", "7 7", "1", ""]
    trains(module, text_batch(module, texts, ADD), "loss")


# --------------------------------------------------------------------------- pairwise judge
def test_pairwise_judge_by_reward_then_length_then_position(module):
    texts = ["5", "55", "6", "5", "8", "8", "88", "8"]
    rewards = [1, 1, 0, 1, 1, 1, 1, 1]
    batch = text_batch(module, texts, ADD, rewards=rewards)
    out = run(PairwiseJudge(), module, batch)
    reference, wins = out["extras:pairwise_reference"], out["extras:pairwise_wins"]
    assert wins.shape == (8, 2) and reference.dtype == torch.bool
    lengths = [2, 3, 2, 2, 2, 2, 3, 2]
    ctx, keys = module.context(0), row_keys(batch.rollout)
    for group in (0, 1):
        rows = list(range(4 * group, 4 * group + 4))
        ordered = sorted(rows, key=lambda r: keys[r])
        draw = row_generator(0, ctx.seed, ctx.step, "group", *[keys[r] for r in ordered])
        ref = ordered[int(torch.randint(4, (1,), generator=draw))]
        assert reference[rows].tolist() == [r == ref for r in rows]
        for row in rows:
            if row == ref:
                assert not wins[row].any()
                continue
            better = (rewards[row], -lengths[row]) > (rewards[ref], -lengths[ref])
            tie = (rewards[row], lengths[row]) == (rewards[ref], lengths[ref])
            assert wins[row].tolist() == ([True, False] if tie else [better, better])


def test_brpo_advantage_trains_from_the_judge():
    module = tiny_module(objective=grpo.replace(group_zscore, brpo_advantage(filter_threshold=None)),
                         update=dict(micro_batch_size=4))
    texts = ["5", "55", "6", "1", "8", "88", "9", "8", "3", "1", "3", "33", "7", "", "7", "71"]
    trains(module, text_batch(module, texts, ADD), "brpo/win_frac")


def test_random_draws_follow_rows_not_positions(module):
    """Appeals, judge references and critic votes of a row are the same after reordering / splitting rows."""
    texts = ["2+3=5", "2+3=5 5", "6", "5 5", "1+7=8", "8", "4+4=8 8", "7"]
    batch = text_batch(module, texts, ADD, rewards=[0, 0, 0, 1, 0, 1, 0, 0])
    order = torch.tensor([5, 4, 7, 6, 1, 0, 3, 2])
    moved = batch.select(order)
    providers = [(AppealCheck(q=0.5), "extras:appeal_flipped"), (PairwiseJudge(), "extras:pairwise_reference"),
                 (ReasoningSteps(delimiter=" ", critics=5), "extras:step_wrong_votes")]
    for provider, slot in providers:
        whole, reordered = run(provider, module, batch)[slot], run(provider, module, moved)[slot]
        assert torch.equal(whole[order], reordered), slot
        half = run(provider, module, batch.select(torch.arange(4, 8)))[slot]
        assert torch.equal(whole[4:8], half), slot
