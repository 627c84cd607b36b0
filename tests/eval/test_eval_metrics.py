"""rlobj.eval: pass@k (unbiased: exact expectation over all k-subsets; monotone in k), maj@k and
CoT-pass@k golden values, the rule and engine-backed CoT judges, solve-rate tables with support
shrinkage / expansion counts on a hand example, and the PNG plots."""

import itertools
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.eval import (
    EngineCotJudge,
    RuleCotJudge,
    compare_solve_rates,
    cot_pass_at_k,
    cot_pass_at_k_mean,
    judge_samples,
    maj_at_k,
    pass_at_k,
    pass_at_k_curve,
    plot_pass_at_k,
    plot_training_curves,
    read_metrics_csv,
)
from rlobj.rollout.engine import Engine, RolloutBatch, SamplingConfig


# =========================================================================== pass@k
@settings(max_examples=80)
@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_exact_expectation_over_all_subsets(args):
    n, c, k = args
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    exact = Fraction(sum(any(samples[i] for i in subset) for subset in subsets), len(subsets))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12)
    # monotone in k (non-decreasing), and in c
    assert all(pass_at_k(n, c, j) <= pass_at_k(n, c, j + 1) + 1e-12 for j in range(1, n))
    if c < n:
        assert pass_at_k(n, c, k) <= pass_at_k(n, c + 1, k) + 1e-12


def test_pass_at_k_golden_and_bad_input():
    # n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k_curve([(5, 2), (5, 0)], [1, 2]) == {1: pytest.approx(0.2), 2: pytest.approx(0.35)}
    with pytest.raises(ValueError, match=r"k must lie in \[1, n=4\]"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="pass_at_k_curve: counts must hold"):
        pass_at_k_curve([], [1])


def test_maj_at_k_golden():
    answers = ["7", "5", "7", "5", "5", None]
    correct = [True, False, True, False, False, False]
    assert maj_at_k(answers, correct, k=1) == 1.0   # "7" alone
    assert maj_at_k(answers, correct, k=4) == 1.0   # 7:2, 5:2 -> tie, "7" seen first
    assert maj_at_k(answers, correct, k=5) == 0.0   # 5:3 beats 7:2
    assert maj_at_k([None, None], [False, False]) == 0.0


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


# =========================================================================== solve-rate tables
def test_solve_rate_table_counts_on_a_hand_example():
    before = {"p1": (8, 3), "p2": (8, 1), "p3": (8, 0), "p4": (8, 0), "p5": (8, 8), "p6": (8, 2)}
    after = {"p1": (8, 7), "p2": (8, 0), "p3": (8, 2), "p4": (8, 0), "p5": (8, 8), "p6": (8, 0)}
    comparison = compare_solve_rates(before, after)
    # p1 preserved (3 -> 7), p2 shrinkage (1 -> 0), p3 expansion (0 -> 2), p4 out (0 -> 0),
    # p5 preserved (8 -> 8), p6 shrinkage (2 -> 0)
    assert [row.support for row in comparison.rows] == [
        "preserved", "shrinkage", "expansion", "out of support", "preserved", "shrinkage"]
    assert comparison.counts == {"preserved": 2, "shrinkage": 2, "expansion": 1, "out of support": 1,
                                 "improved": 2, "worse": 2, "same": 2}
    # pass@1 = mean solve rate: before 14/48, after 17/48 ; pass@8 = fraction in support: 4/6 vs 3/6
    assert comparison.pass_at_k(1, "before") == pytest.approx(14 / 48)
    assert comparison.pass_at_k(1, "after") == pytest.approx(17 / 48)
    assert comparison.pass_at_k(8, "before") == pytest.approx(4 / 6)
    assert comparison.pass_at_k(8, "after") == pytest.approx(3 / 6)
    text = comparison.table(labels=("base", "rl"))
    assert text.splitlines()[0].split() == ["problem", "base", "c/n", "rate", "rl", "c/n", "rate", "change", "support"]
    assert "p2            1/8  0.12     0/8  0.00   -0.12  shrinkage" in text  # 1/8 = 0.125 prints as 0.12
    assert "support: preserved 2, shrinkage 2, expansion 1, out of support 1 (of 6 problems)" in text
    # a stricter support threshold (3 correct of 8): p1 and p5 preserved, p2, p3, p4, p6 out of support
    strict = compare_solve_rates(before, after, min_correct=3).counts
    assert (strict["preserved"], strict["shrinkage"], strict["expansion"], strict["out of support"]) == (2, 0, 0, 4)


def test_solve_rate_bad_input():
    with pytest.raises(ValueError, match=r"only in before: \['b'\], only in after: \[\]"):
        compare_solve_rates({"a": (2, 1), "b": (2, 0)}, {"a": (2, 1)})
    with pytest.raises(ValueError, match=r"after\['a'\] needs n >= 1 and 0 <= c <= n, got n=2, c=3"):
        compare_solve_rates({"a": (2, 1)}, {"a": (2, 3)})
    with pytest.raises(ValueError, match=r"before\['a'\] must be an \(n, c\) pair of ints"):
        compare_solve_rates({"a": (2.0, 1)}, {"a": (2, 1)})
    with pytest.raises(ValueError, match="min_correct must be an int >= 1, got 0"):
        compare_solve_rates({"a": (2, 1)}, {"a": (2, 1)}, min_correct=0)


# =========================================================================== plots and curves
def test_plot_pass_at_k_writes_a_png(tmp_path):
    curves = {"base": pass_at_k_curve([(16, 1), (16, 6), (16, 0)], [1, 2, 4, 8, 16]),
              "rl": pass_at_k_curve([(16, 9), (16, 14), (16, 0)], [1, 2, 4, 8, 16])}
    path = plot_pass_at_k(curves, tmp_path / "sub" / "passk.png")
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"curve 'x' needs int k >= 1 and values in \[0, 1\]"):
        plot_pass_at_k({"x": {1: 1.5}}, tmp_path / "bad.png")


def write_csv(path, rows):
    columns = ["epoch", "step", "entropy", "response/length_mean", "reward/mean"]
    lines = [",".join(columns)] + [",".join("" if row.get(c) is None else str(row[c]) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_curves_from_metrics_csv(tmp_path):
    # Lightning CSVLogger style: sparse rows, some metrics logged only on some rows
    first = write_csv(tmp_path / "a.csv", [
        {"epoch": 0, "step": 0, "entropy": 1.5, "response/length_mean": 40},
        {"epoch": 0, "step": 1, "entropy": 1.2, "reward/mean": 0.5},
        {"epoch": 0, "step": 2, "entropy": 0.9, "response/length_mean": 55},
    ])
    second = write_csv(tmp_path / "b.csv", [{"epoch": 0, "step": 0, "entropy": 1.4, "response/length_mean": 30}])
    series = read_metrics_csv(first)
    assert series["entropy"] == [(0.0, 1.5), (1.0, 1.2), (2.0, 0.9)]
    assert series["response/length_mean"] == [(0.0, 40.0), (2.0, 55.0)]
    assert series["epoch"] == [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]
    path = plot_training_curves({"run a": first, "run b": second}, tmp_path / "curves.png")
    assert path.is_file() and path.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"no run logged 'kl/ref_k3'; columns: \['entropy', 'epoch'"):
        plot_training_curves({"a": first}, tmp_path / "x.png", metrics=[("kl/ref_k3", "KL")])
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_metrics_csv(tmp_path / "missing.csv")
