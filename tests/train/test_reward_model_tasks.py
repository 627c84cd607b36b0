"""Reward-model training tasks (rlobj/train/reward_model_tasks.py): TRM's sentence judge (faithfulness,
then correctness) and RM-R1's preference task, whose format hides the position, with its verdict checked."""

import pytest
import torch
from train._judge_helpers import load_judge

from rlobj.ops.errors import RlobjInputError


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
    model, tok = load_judge(tiny_judges["raw"])  # the second stage sees the first stage's verdict
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
