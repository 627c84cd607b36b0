"""LLM judges (rlobj/train/judges.py) on tiny models built here: pointwise verdicts parsed from real
outputs and garbage, a thinking judge's budget, pairwise position swaps, unreadable verdicts counted,
the principle judge's mean yes-probability, failures and timeouts counted, not raised."""

import math

import pytest
import torch
from train._judge_helpers import RECORDS, load_judge

from rlobj.ops.errors import RlobjInputError
from rlobj.train.judges import PairwiseLLMJudge, PointwiseJudge, PrincipleJudge, ThinkingJudge
from rlobj.train.paper_rewards import RLBFFJudge


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
    model, tok = load_judge(tiny_judges["raw"])
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


# ------------------------------------------------------------------ failures and composition
def test_judge_failure_and_timeout_are_counted_not_raised(tiny_judges, tmp_path):
    broken = PointwiseJudge(str(tmp_path / "missing"), name="broken")
    scores, metrics = broken.score_texts(["2", "3"], RECORDS[:2])
    assert [s.reward for s in scores] == [0.0, 0.0] and metrics["broken/errors"] == 2.0
    assert "cannot load" in broken.last_notes[0]
    slow = PointwiseJudge(tiny_judges["seven"], batch_size=1, timeout=1e-9, name="slow")
    scores, metrics = slow.score_texts(["2", "3"], RECORDS[:2])
    assert metrics["slow/timeouts"] >= 1.0 and metrics["slow/failed_fraction"] == metrics["slow/timeouts"] / 2
