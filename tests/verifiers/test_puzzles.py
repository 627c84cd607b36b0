"""Puzzle verifiers (rlobj/verifiers/puzzles.py): the countdown verifier on hand cases (reuse,
unknown numbers, unsafe input), the brute-force solver against a slow check, format reward and
use_all, the knights-and-knaves verifier from answer text."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.verifiers import (
    CountdownVerifier,
    KnightsKnavesVerifier,
    evaluate_expression,
    solve_countdown,
)


@settings(max_examples=25)
@given(numbers=st.lists(st.integers(1, 12), min_size=2, max_size=4), target=st.integers(1, 60))
def test_countdown_brute_force_solutions_verify(numbers, target):
    sample = {"numbers": numbers, "target": target}
    solution = solve_countdown(numbers, target)
    if solution is not None:
        assert CountdownVerifier(extract="whole")(solution, sample) == 1.0
        value, used = evaluate_expression(solution)
        assert value == target and all(used.count(n) <= numbers.count(n) for n in used)
    else:  # slow reference check on the easy cases: no single number or pair reaches the target
        assert target not in numbers
        for i, a in enumerate(numbers):
            for j, b in enumerate(numbers):
                if i != j:
                    assert target not in (a + b, a - b, a * b) and (
                        b == 0 or Fraction(a, b) != target
                    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("<answer>(6 + 4) * 3</answer>", 1.0),
        ("<answer>(6 + 4) * 3 = 30</answer>", 1.0),
        ("<answer>(6 + 4) * 3 = 31</answer>", 0.0),
        ("<answer>6 * 5</answer>", 0.0),  # 5 not given
        ("<answer>(6 + 6) * 3</answer>", 0.0),  # 6 used twice
        ("<answer>6 / (4 - 4) + 3</answer>", 0.0),  # division by zero, 4 twice
        ("<answer>__import__('os')</answer>", 0.0),
        ("<answer>6 ** 2</answer>", 0.0),
        ("<answer>-6 + 36</answer>", 0.0),
        ("(6 + 4) * 3", 0.0),  # no tags
    ],
)
def test_countdown_verifier_hand_cases(answer, expected):
    assert CountdownVerifier()(answer, {"numbers": [6, 4, 3], "target": 30}) == expected


def test_countdown_format_reward_and_use_all():
    sample = {"numbers": [6, 4, 3], "target": 30}
    assert CountdownVerifier(format_reward=0.1)("<answer>6 + 4</answer>", sample) == 0.1
    assert CountdownVerifier(use_all=True)("<answer>(6 + 4) * 3</answer>", sample) == 1.0
    assert (
        CountdownVerifier(use_all=True)(
            "<answer>6 * 5</answer>", {"numbers": [6, 5, 1], "target": 30}
        )
        == 0.0
    )


def test_knights_knaves_verifier_from_answer_text_only():
    sample = {"answer": "Alice is a knave, Bob is a knight"}
    assert KnightsKnavesVerifier()("bob is a knight; alice is a knave", sample) == 1.0
    assert (
        KnightsKnavesVerifier(extract="answer_tag")(
            "<answer>Alice is a knave, Bob is a knight</answer>", sample
        )
        == 1.0
    )
    with pytest.raises(ValueError, match="holds no solution"):
        KnightsKnavesVerifier()("x", {"answer": "nobody"})
