"""MathVerifier: real math-verify calls."""

import threading

import pytest

from rlobj.verifiers import MathVerifier, parse_gold


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        (r"The answer is \boxed{0.5}", r"\frac{1}{2}", 1.0),
        ("so 1/2", "0.5", 1.0),
        (r"first I guess 3, finally \boxed{4}", "4", 1.0),
        (r"\boxed{3\sqrt{2}}", r"\sqrt{18}", 1.0),
        (r"\boxed{x^2 + 2x + 1}", "(x+1)^2", 1.0),
        ("I get 41", "42", 0.0),
        ("no answer at all", "42", 0.0),
        (r"\boxed{\{1, 2\}}", r"\{2, 1\}", 1.0),
    ],
)
def test_math_verifier_hand_cases(completion, answer, expected):
    assert MathVerifier()(completion, {"answer": answer}) == expected


def test_math_style_solution_as_gold():
    solution = r"We add: $2 + 3 = 5$, so the answer is $\boxed{5}$."
    assert MathVerifier(answer_key="solution")(r"\boxed{5}", {"solution": solution}) == 1.0
    assert MathVerifier(answer_key="solution")(r"\boxed{2}", {"solution": solution}) == 0.0


def test_parse_gold_and_unparsable_gold():
    assert str(parse_gold("42")[0]) == "42"
    with pytest.raises(ValueError, match="could not parse the reference answer"):
        parse_gold("")


def test_works_outside_the_main_thread():
    results = []
    thread = threading.Thread(
        target=lambda: results.append(MathVerifier()(r"\boxed{2}", {"answer": "2"}))
    )
    thread.start()
    thread.join()
    assert results == [1.0]


def test_bad_timeout_argument():
    with pytest.raises(ValueError, match="'timeout_seconds' must be an int >= 1"):
        MathVerifier(timeout_seconds=0)
