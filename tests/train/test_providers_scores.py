"""Providers of rlobj.train.providers.scores / .steps: hand-checked values on small text batches, and
one training update through each consuming term."""

import dataclasses
import math

import pytest
import torch

from rlobj import (
    aepo_reward,
    backward_correction,
    batch_whiten,
    brpo_advantage,
    co_reward,
    conciseness_reward,
    critique_token_advantage,
    fn_rate_from_appeals,
    gcpo_reward,
    group_zscore,
    grpo,
    leave_one_out,
    multi_reward_advantage,
    ppr_renorm,
    token_hidden_reward,
    vsrm_step_reward,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import RolloutBatch, left_pad_prompts
from rlobj.train.forward import token_logprobs
from rlobj.train.providers import (
    AepoCandidates,
    AnswerIds,
    AppealCheck,
    AuxConstruction,
    ConcisenessScore,
    PairwiseJudge,
    ReasoningSteps,
    RewardComponents,
    TokenInfluence,
    build_providers,
    resolve_providers,
)
from rlobj.train.providers.scores import answer_key, row_generator, row_keys
from rlobj.train.providers.steps import check_equations, split_steps
from rlobj.train.stages import Batch, Score

from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module


def text_rollout(module, prompts: list[str], responses: list[str], group_size: int) -> RolloutBatch:
    """A rollout of the given response texts (EOS appended), ``group_size`` rows per group."""
    tok = module.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    prompt_ids, prompt_mask = left_pad_prompts([module.encode(p) for p in prompts], pad)
    ids = [module.encode(r) + [eos] for r in responses]
    width = max(len(i) for i in ids)
    response_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    response_mask = torch.zeros(len(ids), width, dtype=torch.bool)
    for row, seq in enumerate(ids):
        response_ids[row, :len(seq)] = torch.tensor(seq)
        response_mask[row, :len(seq)] = True
    with torch.no_grad():
        logp, _ = token_logprobs(module.policy, prompt_ids, prompt_mask, response_ids, response_mask)
    rows = len(ids)
    return RolloutBatch(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                        response_mask=response_mask, logp_rollout=logp,
                        group_ids=torch.arange(rows) // group_size, truncated=torch.zeros(rows, dtype=torch.bool),
                        finish_reasons=("stop",) * rows)


def text_batch(module, responses, records, rewards=None, fields=None, group_size=4) -> Batch:
    """A scored Batch: ``records[g]`` for group g; rewards default to ExactAnswer on the texts."""
    rows = [records[row // group_size] for row in range(len(responses))]
    if rewards is None:
        rewards = [float(r.strip() == rec["answer"]) for r, rec in zip(responses, rows)]
    fields = fields or [{}] * len(responses)
    rollout = text_rollout(module, [r["prompt"] for r in rows], responses, group_size)
    return Batch(rollout=rollout, records=rows, scores=[Score(float(r), fields=f) for r, f in zip(rewards, fields)])


def weights(module):
    return torch.cat([p.detach().flatten() for p in module.policy.parameters()])


def trains(module, batch, metric: str) -> dict:
    """One update through ``update_on_batch``: finite metrics, the term's metric present, weights moved."""
    before = weights(module)
    metrics = module.update_on_batch(batch, module.context(0))
    assert metric in metrics, sorted(metrics)
    assert all(math.isfinite(float(v)) for v in metrics.values()), metrics
    assert float((weights(module) - before).abs().max()) > 0
    return metrics


def run(provider, module, batch, terms=()):
    provider.setup(tuple(terms))
    return provider.batch(module.context(0), batch, {"rewards": batch.rewards})


ADD = [{"prompt": "2+3=", "answer": "5", "completion": "5"}, {"prompt": "4+4=", "answer": "8", "completion": "8"},
       {"prompt": "1+2=", "answer": "3", "completion": "3"}, {"prompt": "6+1=", "answer": "7", "completion": "7"}]


@pytest.fixture(scope="module")
def module():
    return tiny_module()


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


# --------------------------------------------------------------------------- steps
def test_split_steps_maps_delimiters_to_tokens(module):
    batch = text_batch(module, ["1+2=3 3*2=7", "5 ", "12", "4 4"], ADD[:1])
    ends, steps, texts = split_steps(module.context(0), batch.rollout, " ")
    assert texts[0] == "1+2=3 3*2=7"
    assert ends[0].nonzero().flatten().tolist() == [5, 11]  # the space, then EOS
    assert [s.text for s in steps[0]] == ["1+2=3 ", "3*2=7"]
    assert ends[1].nonzero().flatten().tolist() == [2]  # a trailing delimiter ends no separate step
    assert ends[2].nonzero().flatten().tolist() == [2] and ends[3].nonzero().flatten().tolist() == [1, 3]
    assert check_equations("1+2*3=7 and 2-5=-3") == 1.0 and check_equations("9=8") == 0.0


def test_process_rewards_and_critic_votes(module):
    batch = text_batch(module, ["1+2=3 3*2=7", "5 ", "12", "4 5"], [{**ADD[0], "completion": "4 5"}])
    out = run(ReasoningSteps(delimiter=" ", critic_noise=0.0, critics=3), module, batch)
    process, votes = out["extras:process_rewards"], out["extras:step_wrong_votes"]
    assert process[0, [5, 11]].tolist() == [1.0, 0.0] and votes[0, [5, 11]].tolist() == [0.0, 1.0]
    assert process[1, 2] == 0.5 and float(votes[1, 2] * 3) == pytest.approx(round(float(votes[1, 2] * 3)))
    assert float(process[~out["extras:step_ends"]].abs().sum()) == 0
    prefix = run(ReasoningSteps(delimiter=" ", checker="reference_prefix"), module, batch)["extras:process_rewards"]
    assert prefix[3, [1, 3]].tolist() == [1.0, 1.0] and prefix[2, 2] == 0.0 and prefix[0, 5] == 0.0
    given = text_batch(module, ["1+2=3 3*2=7"] * 4, ADD[:1], fields=[{"process_rewards": [0.25, 0.75]}] * 4)
    assert run(ReasoningSteps(delimiter=" "), module, given)["extras:process_rewards"][0, [5, 11]].tolist() == [0.25, 0.75]


def test_step_accuracy_scores_prefix_plus_continuation(module):
    """A scripted sampler that always continues with "6": prefix "4" of answer "46" becomes correct."""
    eos = module.tokenizer.eos_token_id
    seen = []

    def sample(records, n=None, salt=0, **changes):
        seen.append(([r["prompt"] for r in records], changes["seed"]))
        rows = len(records) * n
        ids = torch.tensor([[module.encode("6")[0], eos]] * rows)
        rollout = RolloutBatch(prompt_ids=torch.ones(rows, 1, dtype=torch.long),
                               prompt_mask=torch.ones(rows, 1, dtype=torch.bool), response_ids=ids,
                               response_mask=torch.ones(rows, 2, dtype=torch.bool), logp_rollout=torch.zeros(rows, 2),
                               group_ids=torch.arange(len(records)).repeat_interleave(n),
                               truncated=torch.zeros(rows, dtype=torch.bool), finish_reasons=("stop",) * rows)
        return Batch(rollout=rollout, records=[records[i] for i in rollout.group_ids.tolist()])

    ctx = module.context(0)
    ctx = dataclasses.replace(ctx, sample=sample)
    records = [{"prompt": "40+6=", "answer": "46", "completion": "46"}]
    batch = text_batch(module, ["4 6", "46", "4", "5"], records)
    provider = ReasoningSteps(delimiter=" ", samples=2)
    out = provider.batch(ctx, batch, {"rewards": batch.rewards})
    # one call per prefix, each seeded from its row's content and the prefix (rank-independent)
    assert [p for prompts, _ in seen for p in prompts] == ["40+6=", "40+6=4 ", "40+6=4 6", "40+6=46", "40+6=4", "40+6=5"]
    assert all(len(prompts) == 1 for prompts, _ in seen) and len({seed for _, seed in seen}) == len(seen)
    first = list(seen)
    seen.clear()
    provider.batch(ctx, batch, {"rewards": batch.rewards})
    assert seen == first
    # continuations: "6" | "4 6"->"4 66" | "4 6 6"... : only "4"+"6" = "46" is right
    assert out["extras:start_accuracy"].tolist() == [0.0] * 4
    step = out["extras:step_accuracy"]
    assert step[0, [1, 3]].tolist() == [0.0, 0.0] and step[1, 2] == 0.0 and step[2, 1] == 1.0 and step[3, 1] == 0.0


def test_ppr_renorm_trains_from_steps():
    module = tiny_module(objective=ppr_renorm() >> grpo.replace(group_zscore, batch_whiten()), update=dict(micro_batch_size=4),
                         providers=[{"ReasoningSteps": {"delimiter": " "}}])
    texts = ["2+3=5 5", "5", "2+3=6 6", "1", "4+4=8", "8", "8 8", "3", "3", "1+2=3", "1+2=4 4", "0",
             "7", "6+1=7 7", "6", "7 7"]
    metrics = trains(module, text_batch(module, texts, ADD), "ppr/steps")
    assert metrics["ppr/steps"] > 0  # judged turns: every step but the answer (the last)


def test_critique_token_advantage_trains_from_votes():
    objective = grpo.replace(group_zscore, group_zscore() >> critique_token_advantage())
    module = tiny_module(objective=objective, update=dict(micro_batch_size=4), providers=[{"ReasoningSteps": {"delimiter": " "}}])
    texts = ["2+3=5 5", "5", "2+3=6 6", "1", "4+4=8", "8", "4+4=9 8", "3", "3", "1+2=3", "1+2=4 4", "0",
             "7", "6+1=7 7", "6", "6+1=8 7"]
    trains(module, text_batch(module, texts, ADD), "capo/wrong_token_frac")


def test_vsrm_trains_with_sampled_prefix_accuracy():
    module = tiny_module(objective=vsrm_step_reward() >> grpo.replace(group_zscore, batch_whiten()),
                         update=dict(micro_batch_size=4), rollout=dict(max_new_tokens=3),
                         providers=[{"ReasoningSteps": {"delimiter": " ", "samples": 2}}])
    texts = ["2 5", "5", "1 1", "55", "8", "4 8", "8 8", "3", "3", "1 3", "3", "0", "7", "6 1", "7 7", "71"]
    batch = text_batch(module, texts, ADD)
    out = module.providers[0].batch(module.context(0), batch, {"rewards": batch.rewards})
    accuracy = out["extras:step_accuracy"][out["extras:step_ends"]]
    assert set((accuracy * 2).tolist()) <= {0.0, 1.0, 2.0}
    start = out["extras:start_accuracy"]
    assert all(len(set(start[4 * g:4 * g + 4].tolist())) == 1 for g in range(4))
    trains(module, batch, "vsrm/steps")


# --------------------------------------------------------------------------- token influence
def _influence_loop(module, batch, threshold=0.5):
    """NTHR influence with explicit prediction-error vectors and hidden states (HF hidden_states)."""
    from rlobj.rollout.logprobs import joined_inputs

    rollout, policy = batch.rollout, module.policy
    with torch.no_grad():
        out = policy(**joined_inputs(rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                                     rollout.response_mask), output_hidden_states=True)
    seq = rollout.response_ids.shape[1]
    hidden = out.hidden_states[-1][:, -(seq + 1):-1].double()
    probs = torch.softmax(out.logits[:, -(seq + 1):-1].double(), -1)
    errors = torch.nn.functional.one_hot(rollout.response_ids, probs.shape[-1]).double() - probs
    rewards, groups, mask = batch.rewards, rollout.group_ids, rollout.response_mask
    result = torch.zeros(mask.shape, dtype=torch.float64)
    for i in range(len(rewards)):
        for k in range(seq):
            if not mask[i, k]:
                continue
            for j in range(len(rewards)):
                if groups[j] != groups[i] or not rewards[j] > threshold:
                    continue
                for m in range(seq):
                    if mask[j, m]:
                        result[i, k] += (errors[j, m] @ errors[i, k]) * (hidden[j, m] @ hidden[i, k])
    return result


def test_token_influence_matches_the_gradient_inner_product_loop():
    module = tiny_module(update=dict(micro_batch_size=3))
    texts = ["5", "55", "6", "1+4", "8", "88", "9", "0"]
    batch = text_batch(module, texts, ADD)
    out = run(TokenInfluence(), module, batch)["extras:token_influence"]
    assert torch.allclose(out.double(), _influence_loop(module, batch), rtol=1e-4, atol=1e-4)
    whole = tiny_module()
    assert torch.allclose(run(TokenInfluence(), whole, batch)["extras:token_influence"], out, atol=1e-5)
    provider = TokenInfluence()
    provider.setup((token_hidden_reward(threshold=0.2),))
    assert provider.threshold == 0.2


def test_token_hidden_reward_trains_from_influence():
    objective = grpo.replace(group_zscore, group_zscore() >> token_hidden_reward(p=0.2))
    module = tiny_module(objective=objective, update=dict(micro_batch_size=4))
    texts = ["5", "55", "6", "1", "8", "88", "9", "8", "3", "1", "3", "33", "7", "", "7", "71"]
    trains(module, text_batch(module, texts, ADD), "thr/reweighted_frac")


def test_providers_build_from_yaml_names():
    built = build_providers([{"AnswerIds": {"extract": "whole"}}, "PairwiseJudge",
                             "rlobj.train.providers.steps.ReasoningSteps", {"TokenInfluence": {"threshold": 0.3}}])
    assert [type(p).__name__ for p in built] == ["AnswerIds", "PairwiseJudge", "ReasoningSteps", "TokenInfluence"]
    assert built[0].extract == "whole" and built[3].threshold == 0.3


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


def test_split_steps_falls_back_to_prefix_decoding(module):
    """Where single-token pieces do not add up to the decoded text, every prefix is decoded instead."""
    batch = text_batch(module, ["1+2=3 3*2=7", "5 ", "4 4", "12"], ADD[:1])
    ctx = module.context(0)
    plain = split_steps(ctx, batch.rollout, " ")

    def decode(rollout):  # single tokens decode with a marker, as a byte-level BPE may for partial characters
        texts = module.decode_responses(rollout)
        return [t + "#" for t in texts] if rollout.response_ids.shape[1] == 1 else texts

    fallback = split_steps(dataclasses.replace(ctx, decode=decode), batch.rollout, " ")
    assert torch.equal(plain[0], fallback[0]) and plain[1] == fallback[1]
