"""CoT-pass@k (rlobj/eval/cot.py): golden values, never above pass@k, the rule judge and the
engine-backed judge (on an engine double), bad input."""


import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlobj.eval import (
    EngineCotJudge,
    RuleCotJudge,
    cot_pass_at_k,
    cot_pass_at_k_mean,
    judge_samples,
    pass_at_k,
)
from rlobj.rollout.engine import Engine, RolloutBatch, SamplingConfig


# =========================================================================== CoT-pass@k
def test_cot_pass_at_k_golden():
    answers = [True, True, True, False, True, False]
    cots = [True, False, True, True, False, False]
    # d = #(answer and cot) = 2 of n = 6 (sample 3's cot is "correct" but its answer is not)
    # k = 1: 2/6 ; k = 3: 1 - C(4,3)/C(6,3) = 1 - 4/20 = 0.8 ; plain pass@3 with c = 4: 1 - C(2,3)/.. = 1
    assert cot_pass_at_k(answers, cots, 1) == pytest.approx(1 / 3)
    assert cot_pass_at_k(answers, cots, 3) == pytest.approx(0.8)
    assert pass_at_k(6, 4, 3) == 1.0
    with pytest.raises(ValueError, match="same length, got 6 and 2"):
        cot_pass_at_k(answers, [True, True], 1)


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=8), st.integers(1, 8))
def test_cot_pass_at_k_never_exceeds_pass_at_k(samples, k):
    k = min(k, len(samples))
    answers, cots = [a for a, _ in samples], [c for _, c in samples]
    assert cot_pass_at_k(answers, cots, k) <= pass_at_k(len(samples), sum(answers), k) + 1e-12


SOLUTIONS = {
    "good": "First 3 * 4 = 12. Then 2 + 12 = 14, so the answer is \\boxed{14}",
    "bad_step": "First 3 * 4 = 11. Then 2 + 11 = 13, so the answer is \\boxed{14}",
    "guess": "\\boxed{14}",
    "two_answers": "Maybe it is 2 + 12 = 14 \\boxed{14} or perhaps \\boxed{20}",
    "chain": "Sum 1 + 2 + 3 = 6 and 10 - 2 * 3 = 4 and 7 / 2 = 3.5 hence \\boxed{4}",
}


def test_rule_cot_judge_golden():
    judge = RuleCotJudge(min_reasoning_chars=10)
    assert judge("2+3*4", SOLUTIONS["good"])
    assert judge.problems("2+3*4", SOLUTIONS["bad_step"]) == ["wrong arithmetic: 3 * 4 = 11"]
    assert judge.problems("2+3*4", SOLUTIONS["guess"]) == ["reasoning too short (0 < 10 chars)"]
    assert judge.problems("", SOLUTIONS["two_answers"]) == ["conflicting final answers: 14, 20"]
    assert judge("", SOLUTIONS["chain"])  # chains and precedence: 1+2+3 = 6, 10-2*3 = 4, 7/2 = 3.5
    assert RuleCotJudge(forbidden=("maybe",)).problems("", SOLUTIONS["two_answers"])[-1] == "forbidden phrase: 'maybe'"
    with pytest.raises(ValueError, match="exactly one capture group"):
        RuleCotJudge(answer_pattern=r"\\boxed")


def test_cot_pass_at_k_mean_with_the_rule_judge():
    # problem 1: answers correct for good, bad_step, guess (c = 3 of 4), cot accepted only for good: d = 1
    # pass@1 = 3/4, cot_pass@1 = 1/4 ; pass@2 = 1 - C(1,2)/C(4,2) = 1, cot_pass@2 = 1 - C(3,2)/C(4,2) = 1/2
    # problem 2: 2 samples, both wrong: 0 everywhere
    problems = [
        {"prompt": "2+3*4", "responses": [SOLUTIONS["good"], SOLUTIONS["bad_step"], SOLUTIONS["guess"], "\\boxed{3}"],
         "answer_correct": [True, True, True, False]},
        {"prompt": "x", "responses": ["no idea \\boxed{1}", "\\boxed{2}"], "answer_correct": [False, False]},
    ]
    result = cot_pass_at_k_mean(problems, RuleCotJudge(min_reasoning_chars=10), ks=[1, 2])
    assert result == {"pass@1": pytest.approx(3 / 8), "cot_pass@1": pytest.approx(1 / 8),
                      "pass@2": pytest.approx(1 / 2), "cot_pass@2": pytest.approx(1 / 4)}
    with pytest.raises(ValueError, match=r"problems\[0\] lacks \['answer_correct'\]"):
        cot_pass_at_k_mean([{"prompt": "", "responses": []}], RuleCotJudge(), ks=[1])


class ScriptedEngine:
    """A test double with the Engine interface: answers each judge prompt with a scripted text
    (character-level token ids), choosing the script by a keyword found in the prompt."""

    supports_sleep = False

    def __init__(self, scripts):
        self.scripts = scripts
        self.calls = 0

    def generate(self, prompts, n, sampling):
        self.calls += 1
        texts = []
        for prompt in prompts:
            text = "".join(map(chr, prompt))
            choice = next(script for key, script in self.scripts.items() if key in text)
            texts.extend(choice[j % len(choice)] for j in range(n))
        width = max(len(t) for t in texts)
        ids = torch.tensor([[ord(ch) for ch in t] + [0] * (width - len(t)) for t in texts])
        mask = torch.tensor([[True] * len(t) + [False] * (width - len(t)) for t in texts])
        batch = len(texts)
        return RolloutBatch(prompt_ids=torch.ones(batch, 1, dtype=torch.long), prompt_mask=torch.ones(batch, 1, dtype=torch.bool),
                            response_ids=ids, response_mask=mask, logp_rollout=torch.zeros(batch, width),
                            group_ids=torch.arange(len(prompts)).repeat_interleave(n),
                            truncated=torch.zeros(batch, dtype=torch.bool), finish_reasons=("stop",) * batch)

    def update_weights(self, named_params):
        pass

    def sleep(self):
        pass

    def wake(self):
        pass


def char_encode(text):
    return [ord(ch) for ch in text]


def char_decode(ids):
    return "".join(map(chr, ids))


def test_engine_cot_judge_with_an_engine_double():
    engine = ScriptedEngine({"3 * 4 = 12": ["Steps check out. VERDICT: CORRECT"],
                             "3 * 4 = 11": ["verdict: correct... wait, VERDICT: INCORRECT"],
                             "boxed{14}": ["I cannot tell."]})
    assert isinstance(engine, Engine)
    judge = EngineCotJudge(engine, char_encode, char_decode)
    responses = [SOLUTIONS["good"], SOLUTIONS["bad_step"], SOLUTIONS["guess"], "wrong \\boxed{3}"]
    verdicts = judge_samples(judge, "2+3*4", responses, [True, True, True, False])
    # the last VERDICT counts; no verdict = incorrect; the wrong answer is never sent to the judge
    assert verdicts == [True, False, False, False]
    assert engine.calls == 1 and len(judge.last_outputs) == 3  # one batched generate call, 3 judged
    assert cot_pass_at_k([True, True, True, False], verdicts, 1) == 0.25
    # majority of votes: 2 of 3 CORRECT -> True; 1 of 3 -> False
    votes = ScriptedEngine({"A": ["VERDICT: CORRECT", "VERDICT: INCORRECT", "VERDICT: CORRECT"],
                            "B": ["VERDICT: CORRECT", "VERDICT: INCORRECT", "VERDICT: INCORRECT"]})
    voter = EngineCotJudge(votes, char_encode, char_decode, sampling=SamplingConfig(max_new_tokens=8), votes=3)
    assert voter.judge_many([("A", "x"), ("B", "y")]) == [True, False]
    assert voter("A", "x") is True


def test_engine_cot_judge_bad_input():
    with pytest.raises(TypeError, match="must have the Engine interface"):
        EngineCotJudge(object(), char_encode, char_decode)
    with pytest.raises(ValueError, match="votes must be an int >= 1, got 0"):
        EngineCotJudge(ScriptedEngine({}), char_encode, char_decode, votes=0)
    with pytest.raises(ValueError, match=r"must contain the fields \{prompt\} and \{response\}"):
        EngineCotJudge(ScriptedEngine({}), char_encode, char_decode, template="judge {prompt}")
