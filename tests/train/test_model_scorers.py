"""Model-backed scorers on tiny models built here: reward model, judges, statuses, paper rewards."""

import math

import pytest
import torch

from rlobj.eval.cot import EngineCotJudge, cot_pass_at_k_mean
from rlobj.ops.errors import RlobjInputError
from rlobj.train import RewardFunctions
from rlobj.train.judges import PairwiseLLMJudge, PointwiseJudge, PrincipleJudge, ThinkingJudge
from rlobj.train.model_scorers import SequenceClassifierRM, nanstd, strip_thinking
from rlobj.train.paper_rewards import (
    CaptionUtility,
    NextSegmentJudge,
    PerceptionJudge,
    RLBFFJudge,
    RLMTReward,
    r3_rewards,
)

RECORDS = [{"prompt": "1+1=", "answer": "2", "completion": "2"}, {"prompt": "2+2=", "answer": "4", "completion": "4"},
           {"prompt": "3+3=", "answer": "6", "completion": "6"}]


def _load(path, kind="causal"):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    cls = AutoModelForSequenceClassification if kind == "classifier" else AutoModelForCausalLM
    return cls.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


# ------------------------------------------------------------------ reward model
def test_reward_model_is_the_first_logit_of_prompt_plus_response_batched(tiny_judges):
    model, tok = _load(tiny_judges["rm"], "classifier")
    completions = ["2", "55", "6 is it"]
    expected = []
    with torch.no_grad():
        for record, completion in zip(RECORDS, completions):
            ids = torch.tensor([tok.encode(record["prompt"] + completion, add_special_tokens=False)])
            expected.append(float(model(input_ids=ids).logits[0, 0]))
    for batch_size in (1, 16):  # padding in a batch changes nothing
        scores, metrics = SequenceClassifierRM(tiny_judges["rm"], dtype="float32", batch_size=batch_size).score_texts(
            completions, RECORDS)
        assert [s.reward for s in scores] == pytest.approx(expected, abs=1e-5)
    assert metrics["reward_model/failed_fraction"] == 0.0
    assert metrics["reward_model/std"] == pytest.approx(nanstd(expected))
    bf16 = SequenceClassifierRM(tiny_judges["rm"], dtype="bfloat16").score_texts(completions, RECORDS)[0]
    assert [s.reward for s in bf16] == pytest.approx(expected, abs=0.05)


def test_reward_model_uses_its_chat_template_for_conversations(tiny_judges, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    path = tmp_path / "rm_chat"
    shutil.copytree(tiny_judges["rm"], path)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = "{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(path)
    rm = SequenceClassifierRM(str(path), dtype="float32")
    rm.load()
    messages = [{"role": "user", "content": "hi"}]
    assert rm.text(messages, "yo") == "<u>hi<a>yo"
    assert rm.text("plain", "x") == "<u>plain<a>x"  # the template applies to text prompts too
    scores, _ = rm.score_texts(["yo"], [{"prompt": "hi", "prompt_messages": messages}])
    assert math.isfinite(scores[0].reward) and scores[0].fields["scored"] == 1.0


def test_rlmt_scores_only_the_answer_after_thinking(tiny_judges):
    rlmt = RLMTReward(tiny_judges["rm"], dtype="float32")
    plain = SequenceClassifierRM(tiny_judges["rm"], dtype="float32")
    scores, metrics = rlmt.score_texts(["<think>x</think>2", "no marker"], RECORDS[:2])
    assert scores[0].reward == pytest.approx(plain.score_texts(["2"], RECORDS[:1])[0][0].reward, abs=1e-6)
    assert scores[1].reward == 0.0 and scores[1].fields["scored"] == 0.0 and metrics["rlmt/invalid"] == 1.0
    assert strip_thinking("a</think>b</think>c", "</think>") == "c"


# ------------------------------------------------------------------ generative judges
def test_pointwise_parse_on_real_outputs_and_on_garbage(tiny_judges):
    fitted = PointwiseJudge(tiny_judges["seven"])
    scores, metrics = fitted.score_texts(["2", "5", "6"], RECORDS)
    assert fitted.last_outputs == ["7", "7", "7"]  # what the fitted judge really wrote
    assert [s.reward for s in scores] == [0.7, 0.7, 0.7] and metrics["judge/failed_fraction"] == 0.0
    raw = PointwiseJudge(tiny_judges["raw"])
    scores, metrics = raw.score_texts(["2", "5", "6"], RECORDS)
    assert all(fitted.parse(t) is None for t in raw.last_outputs), raw.last_outputs  # garbage: unreadable
    assert [s.reward for s in scores] == [0.0] * 3 and metrics["judge/invalid"] == 3.0
    assert metrics["judge/failed_fraction"] == 1.0 and math.isnan(metrics["judge/mean"])
    for garbage in ("", "k=iCMM", "Score: eleven", "11", "-3"):
        assert fitted.parse(garbage) is None, garbage
    assert fitted.parse(" 10 because") == 1.0 and fitted.parse("0") == 0.0


def test_thinking_judge_reasons_within_its_budget_then_gives_a_verdict(tiny_judges):
    judge = ThinkingJudge(tiny_judges["seven"], think_tokens=3)
    scores, _ = judge.score_texts(["2", "5"], RECORDS[:2])
    assert [s.reward for s in scores] == [0.7, 0.7]
    assert all(len(t) <= 3 for t in judge.last_reasoning)  # char tokenizer: one token per character


def test_pairwise_position_swap_is_symmetric_on_a_real_model(tiny_judges):
    judge = PairwiseLLMJudge(tiny_judges["raw"], reference="other")
    responses, others = ["12", "7 is it", "abc"], ["3", "seven", "ab"]
    forward, _ = judge.score_texts(responses, [{**r, "other": o} for r, o in zip(RECORDS, others)])
    backward, _ = judge.score_texts(others, [{**r, "other": y} for r, y in zip(RECORDS, responses)])
    for f, b in zip(forward, backward):
        assert f.reward + b.reward == pytest.approx(1.0, abs=1e-6)
        assert 0.0 < f.reward < 1.0
    assert len({round(f.reward, 6) for f in forward}) > 1  # the judge does tell responses apart


def test_pairwise_generated_verdicts_unreadable_are_counted(tiny_judges):
    judge = PairwiseLLMJudge(tiny_judges["seven"], verdict="generate")
    scores, metrics = judge.score_texts(["2", "3"], RECORDS[:2])
    assert judge.last_outputs[0] == "7" and metrics["pairwise_judge/invalid"] == 2.0
    with pytest.raises(RlobjInputError, match="record has no key 'nope'"):
        PairwiseLLMJudge(tiny_judges["raw"], reference="nope").score_rows(["p"], ["y"], [{"prompt": "p"}])


def test_principle_judge_is_the_mean_yes_probability(tiny_judges):
    model, tok = _load(tiny_judges["raw"])
    judge = PrincipleJudge(tiny_judges["raw"], principles=["is short", "is a number"])
    scores, _ = judge.score_texts(["2"], RECORDS[:1])
    yes, no = tok.encode("Yes", add_special_tokens=False)[0], tok.encode("No", add_special_tokens=False)[0]
    expected = []
    with torch.no_grad():
        for principle in ("is short", "is a number"):
            text = judge.template.format(prompt="1+1=", response="2", principle=principle)
            logits = model(input_ids=torch.tensor([tok.encode(text, add_special_tokens=False)])).logits[0, -1]
            expected.append(float(torch.softmax(logits[[yes, no]], -1)[0]))
    assert judge.last_judgements[0] == pytest.approx(expected, abs=1e-5)
    assert scores[0].reward == pytest.approx(sum(expected) / 2, abs=1e-5)
    binary = RLBFFJudge(tiny_judges["raw"], principles=["is short", "is a number"], binary=True,
                        template=judge.template)
    assert binary.score_texts(["2"], RECORDS[:1])[0][0].reward == sum(p > 0.5 for p in expected) / 2


def test_perception_and_next_segment_judges_read_their_record_fields(tiny_judges):
    record = {"prompt": "what is shown", "visual_annotations": ["a red ball", "two cats"], "completion": "cats"}
    perception = PerceptionJudge(tiny_judges["raw"])
    scores, _ = perception.score_texts(["a ball"], [record])
    assert len(perception.last_judgements[0]) == 2 and scores[0].reward in (0.0, 0.5, 1.0)
    segment = NextSegmentJudge(tiny_judges["raw"], binary=False)
    scores, _ = segment.score_texts(["cats"], [record])
    assert 0.0 < scores[0].reward < 1.0
    with pytest.raises(RlobjInputError, match=r"record\['visual_annotations'\] is None"):
        perception.score_rows(["p"], ["y"], [{"prompt": "p"}])


def test_caption_utility_is_the_accuracy_of_the_second_stage(tiny_judges):
    questions = [{"question": "color?", "options": ["red", "blue"], "answer": 0},
                 {"question": "count?", "options": ["one", "two", "three"], "answer": 2}]
    utility = CaptionUtility(tiny_judges["raw"])
    scores, _ = utility.score_texts(["a red ball"], [{"prompt": "describe", "questions": questions}])
    chosen = utility.last_choices[0]
    assert scores[0].reward == ((chosen[0] == 0) + (chosen[1] == 2)) / 2


def test_cot_pass_at_k_with_a_real_tiny_judge(tiny_judges):
    from rlobj.rollout import HFEngine, SamplingConfig

    model, tok = _load(tiny_judges["cot"])
    judge = EngineCotJudge(HFEngine(model, eos_token_id=tok.eos_token_id), encode=lambda t: tok.encode(t),
                           decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
                           sampling=SamplingConfig(max_new_tokens=24, greedy=True))
    problems = [{"prompt": "1+1", "responses": ["2", "3"], "answer_correct": [True, False]}]
    metrics = cot_pass_at_k_mean(problems, judge, ks=[1])
    assert judge.last_outputs == ["VERDICT: CORRECT"]  # the real tiny judge's text, parsed
    assert metrics["cot_pass@1"] == metrics["pass@1"] == 0.5
    raw_model, raw_tok = _load(tiny_judges["raw"])
    garbage = EngineCotJudge(HFEngine(raw_model, eos_token_id=raw_tok.eos_token_id),
                             encode=lambda t: raw_tok.encode(t), decode=lambda ids: raw_tok.decode(ids),
                             sampling=SamplingConfig(max_new_tokens=8, greedy=True))
    assert cot_pass_at_k_mean(problems, garbage, ks=[1])["cot_pass@1"] == 0.0  # no verdict: incorrect


# ------------------------------------------------------------------ failures and composition
def test_judge_failure_and_timeout_are_counted_not_raised(tiny_judges, tmp_path):
    broken = PointwiseJudge(str(tmp_path / "missing"), name="broken")
    scores, metrics = broken.score_texts(["2", "3"], RECORDS[:2])
    assert [s.reward for s in scores] == [0.0, 0.0] and metrics["broken/errors"] == 2.0
    assert "cannot load" in broken.last_notes[0]
    slow = PointwiseJudge(tiny_judges["seven"], batch_size=1, timeout=1e-9, name="slow")
    scores, metrics = slow.score_texts(["2", "3"], RECORDS[:2])
    assert metrics["slow/timeouts"] >= 1.0 and metrics["slow/failed_fraction"] == metrics["slow/timeouts"] / 2


def test_weighted_composition_skips_unscored_rows_and_logs_each(tiny_judges):
    from tests.train._helpers import tiny_module

    def length(completions, **kwargs):
        return [float(len(c)) for c in completions]

    judge = PointwiseJudge(tiny_judges["raw"], name="garbage_judge")  # never readable: always None
    module = tiny_module(scorer=RewardFunctions([length, judge], weights=[1.0, 5.0]), rollout={"max_new_tokens": 3})
    metrics = module.rl_update([{"prompt": "1+1=", "answer": "2"}], step=0)
    assert metrics["garbage_judge/invalid"] == 4.0 and metrics["reward_funcs/garbage_judge/none_fraction"] == 1.0
    assert metrics["reward/mean"] == pytest.approx(metrics["reward_funcs/length/mean"])  # judge left out
    assert "reward_funcs/length/std" in metrics and math.isfinite(metrics["loss"])
    with pytest.raises(RlobjInputError, match="is a scorer: it needs the rollout batch"):
        RewardFunctions([judge]).score_texts(["2"], RECORDS[:1])


def test_bad_judge_configuration_is_an_error_naming_it(tiny_judges):
    with pytest.raises(RlobjInputError, match="exactly one capture group"):
        PointwiseJudge(tiny_judges["raw"], pattern=r"\d+")
    with pytest.raises(RlobjInputError, match="must contain {response}"):
        PointwiseJudge(tiny_judges["raw"], template="no field")
    with pytest.raises(RlobjInputError, match="give exactly one of principles"):
        PrincipleJudge(tiny_judges["raw"])
    with pytest.raises(RlobjInputError, match="dtype: expected one of"):
        SequenceClassifierRM(tiny_judges["rm"], dtype="int8")
    with pytest.raises(RlobjInputError, match="engine: expected 'hf' or 'vllm'"):
        PointwiseJudge(tiny_judges["raw"], engine="tgi")
    with pytest.raises(RlobjInputError, match="field 'missing' is neither"):
        PointwiseJudge(tiny_judges["raw"], template="{response} {missing}").prompts(["p"], ["y"], [{"prompt": "p"}])


# ------------------------------------------------------------------ hand-computed paper rewards
def test_r3_weights_reference_tokens_by_their_spread_over_the_group():
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-1.0, -4.0, 0.0], [-0.5, -0.5, -3.0], [-1.5, -0.5, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.bool)
    groups = torch.tensor([0, 0, 1, 1])
    # group 0: sigma = (0, 1) -> w = (0, 1): R3 = (-2, -4)
    # group 1: sigma = (0.5, 0, 1) -> w = (1/3, 0, 2/3): R3 = (-0.5/3 - 6/3, -1.5/3 - 2/3)
    expected = torch.tensor([-2.0, -4.0, -6.5 / 3, -3.5 / 3])
    assert torch.allclose(r3_rewards(logp, mask, groups), expected)
    flat = r3_rewards(torch.tensor([[-1.0, -3.0], [-1.0, -3.0]]), torch.ones(2, 2, dtype=torch.bool),
                      torch.tensor([0, 0]))
    assert torch.allclose(flat, torch.tensor([-2.0, -2.0]))  # no spread: plain mean



def test_r3_masked_baseline_by_hand():
    logp = torch.tensor([[-1.0, -2.0], [-1.0, -4.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    groups = torch.tensor([0, 0])
    # sigma = (0, 1) from logp -> w = (0, 1); R3_i = w . (logp_i - b_i)
    shared = torch.tensor([[-0.5, -1.0], [-0.5, -1.0]])
    assert torch.allclose(r3_rewards(logp, mask, groups, baseline_logp=shared), torch.tensor([-1.0, -3.0]))
    per_row = torch.tensor([[-0.5, -1.0], [-0.5, -3.0]])
    assert torch.allclose(r3_rewards(logp, mask, groups, baseline_logp=per_row), torch.tensor([-1.0, -1.0]))
    with pytest.raises(RlobjInputError, match="baseline_logp has shape"):
        r3_rewards(logp, mask, groups, baseline_logp=torch.zeros(2, 3))


def test_r3_group_shared_baseline_leaves_group_advantages_unchanged():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(6, 4, generator=gen, dtype=torch.float64) * 3
    mask = torch.ones(6, 4, dtype=torch.bool)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    base = -torch.rand(2, 4, generator=gen, dtype=torch.float64)[groups]  # one baseline per prompt
    plain, corrected = r3_rewards(logp, mask, groups), r3_rewards(logp, mask, groups, baseline_logp=base)
    shift = plain - corrected
    assert torch.allclose(shift[:3], shift[0].expand(3)) and torch.allclose(shift[3:], shift[3].expand(3))
    assert not torch.allclose(shift[0], shift[3])  # the level differs between prompts

    def zscore(r):
        return torch.cat([(r[g] - r[g].mean()) / r[g].std() for g in (slice(0, 3), slice(3, 6))])
    assert torch.allclose(zscore(plain), zscore(corrected))


def _r3_transcribed(logp, lengths, groups, baseline=None):
    """DRO v1 section 4.1.3, term by term in Python floats: sigma_j population std over the group,
    w_j = sigma_j / sum_k sigma_k (uniform if all zero), R3_i = sum_j w_j (l_ij - b_ij)."""
    out = [0.0] * len(logp)
    for g in sorted(set(groups)):
        rows = [i for i, gi in enumerate(groups) if gi == g]
        n_tok = lengths[rows[0]]
        sigma = []
        for j in range(n_tok):
            col = [logp[i][j] for i in rows]
            mu = sum(col) / len(col)
            sigma.append(math.sqrt(sum((x - mu) ** 2 for x in col) / len(col)))
        total = sum(sigma)
        w = [s / total for s in sigma] if total > 0 else [1.0 / n_tok] * n_tok
        for i in rows:
            out[i] = sum(w[j] * (logp[i][j] - (baseline[i][j] if baseline else 0.0)) for j in range(n_tok))
    return out


@pytest.mark.slow
def test_r3_matches_a_plain_transcription_of_the_paper_float64():
    gen = torch.Generator().manual_seed(3)
    for trial in range(20):
        sizes = [int(s) for s in torch.randint(1, 6, (4,), generator=gen)]
        lengths_per_group = [int(n) for n in torch.randint(1, 9, (4,), generator=gen)]
        groups = [g for g, size in enumerate(sizes) for _ in range(size)]
        lengths = [lengths_per_group[g] for g in groups]
        width = max(lengths)
        logp = -torch.rand(len(groups), width, generator=gen, dtype=torch.float64) * 5
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        for i, n in enumerate(lengths):
            mask[i, :n] = True
        logp = logp * mask
        if trial % 5 == 0:  # a group with no spread: uniform weights
            # dyadic values, so the mean over the group is exact and sigma is exactly 0 in both
            logp[torch.tensor(groups) == 0] = torch.round(logp[torch.tensor(groups) == 0][0] * 4) / 4
        base = -torch.rand(len(groups), width, generator=gen, dtype=torch.float64) * mask
        for b in (None, base):
            got = r3_rewards(logp, mask, torch.tensor(groups), baseline_logp=b)
            want = _r3_transcribed(logp.tolist(), lengths, groups, None if b is None else b.tolist())
            assert got.dtype == torch.float64
            assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12), trial

# ------------------------------------------------------------------ TRM and RM-R1
def test_trm_judges_each_sentence_faithfulness_then_correctness(tiny_judges):
    from rlobj.train.reward_model_tasks import SentenceJudge

    judge = SentenceJudge(tiny_judges["raw"])
    record = {"prompt": "capital of France?", "documents": ["Paris is the capital of France."]}
    scores, metrics = judge.score_texts(["It is Paris. It is big!", "   "], [record, record])
    sentences = judge.last_judgements[0]
    assert len(sentences) == 2 and all(isinstance(f, bool) and 0.0 < c < 1.0 for f, c in sentences)
    assert scores[0].reward == pytest.approx(sum(c for _, c in sentences) / 2)
    assert scores[1].fields["scored"] == 0.0 and metrics["trm/invalid"] == 1.0  # no sentence: no reward
    model, tok = _load(tiny_judges["raw"])  # the second stage sees the first stage's verdict
    yes, no = tok.encode("Yes", add_special_tokens=False)[0], tok.encode("No", add_special_tokens=False)[0]
    f0 = sentences[0][0]
    text = judge.correct_template.format(documents="Paris is the capital of France.", prompt="capital of France?",
                                         sentence="It is Paris.", faithful="supported" if f0 else "not supported")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tok.encode(text, add_special_tokens=False)])).logits[0, -1]
    assert sentences[0][1] == pytest.approx(float(torch.softmax(logits[[yes, no]], -1)[0]), abs=1e-5)


def test_rm_r1_task_format_hides_the_position_and_the_verdict_is_checked():
    from rlobj.train.reward_model_tasks import PreferenceTask, PreferenceVerdict

    rows = [{"question": "q", "chosen": "good", "rejected": "bad"}]
    task = PreferenceTask(rows, seed=3)
    records = [task.record(i) for i in range(40)]
    answers = {r["answer"] for r in records}
    assert answers == {"A", "B"}  # the chosen answer is shown first or second
    for r in records:
        first = r["prompt"].split("[A] ")[1].split("\n")[0]
        assert (first == "good") == (r["answer"] == "A")
    assert task.record(7) == PreferenceTask(rows, seed=3).record(7)
    verdict = PreferenceVerdict()
    assert verdict("[[A]] no wait [[B]]", {"answer": "B"}) == 1.0 and verdict("[[A]]", {"answer": "B"}) == 0.0
    with pytest.raises(RlobjInputError, match=r"rows\[0\]: missing keys \['rejected'\]"):
        PreferenceTask([{"question": "q", "chosen": "c"}])


def test_flow_reward_state_round_trip_gives_the_same_rewards():
    from rlobj.train.paper_rewards import FlowReward
    from tests.train._helpers import tiny_module

    module = tiny_module(scorer=FlowReward(fit_steps=10, hidden=8), rollout={"max_new_tokens": 3})
    ctx = module.context(0)
    batch = ctx.sample([{"prompt": "1+1=", "answer": "2", "completion": "2"}] * 2)
    first = module.scorer(ctx, batch)
    restored = FlowReward(fit_steps=10, hidden=8)
    restored.load_state_dict(module.scorer.state_dict())
    again = restored(ctx, batch)  # no refit: the saved field scores the batch
    assert [s.token_rewards for s in again] == [s.token_rewards for s in first]
    assert all(len(s.token_rewards) == n for s, n in zip(first, batch.rollout.response_mask.sum(-1).tolist()))
