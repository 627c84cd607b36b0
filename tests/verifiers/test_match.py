"""ExactMatch, NumericMatch, normalisation and number parsing (rlobj/verifiers/match.py)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlobj.verifiers import (
    ExactMatch,
    NumericMatch,
    normalize_answer,
    parse_number,
)


@pytest.mark.parametrize(
    ("completion", "answer", "extract", "expected"),
    [
        ("46", "46", "whole", 1.0),
        (" 46\n", "46", "whole", 1.0),
        ("46 ", "47", "whole", 0.0),
        ("4 6", "46", "whole", 0.0),
        ("<think>x</think><answer> Paris. </answer>", "paris", "answer_tag", 1.0),
        ("no tag", "paris", "answer_tag", 0.0),
        (r"thus \boxed{\frac{1}{2}}", r"\frac{1}{2}", "boxed", 1.0),
        ("it is 12, no 13", "13", "last_number", 1.0),
        ("line one\nBlue\n\n", "blue", "last_line", 1.0),
    ],
)
def test_exact_match_hand_cases(completion, answer, extract, expected):
    assert ExactMatch(extract=extract)(completion, {"answer": answer}) == expected


def test_exact_match_case_sensitivity_and_key():
    assert ExactMatch(case_sensitive=True)("Paris", {"answer": "paris"}) == 0.0
    assert ExactMatch(answer_key="label")("x", {"label": "X"}) == 1.0


def _reference_normalize(text: str) -> str:
    # slow reference written from the docstring: split on whitespace, rejoin, drop one final '.'
    words = text.split()
    joined = " ".join(words)
    if joined.endswith("."):
        joined = joined[:-1].rstrip()
    return joined.lower()


@given(st.text(alphabet="ab .\n\tAB", max_size=12), st.text(alphabet="ab .\n\tAB", max_size=12))
def test_exact_match_is_symmetric_and_matches_reference(left, right):
    forward = ExactMatch()(left, {"answer": right})
    backward = ExactMatch()(right, {"answer": left})
    assert forward == backward
    assert forward == float(_reference_normalize(left) == _reference_normalize(right))
    assert normalize_answer(left) == _reference_normalize(left)


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("The total is 1,250.", "1250", 1.0),
        ("x = 0.3333333", "1/3", 1.0),
        ("x = 0.334", "1/3", 0.0),
        ("50%", "0.5", 1.0),
        ("no number here", "3", 0.0),
        ("-7", "-7.0", 1.0),
    ],
)
def test_numeric_match_hand_cases(completion, answer, expected):
    assert NumericMatch()(completion, {"answer": answer}) == expected


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_numeric_match_accepts_itself_and_rejects_perturbation(value):
    text = repr(value)
    if "e" in text:  # last_number does not read scientific notation
        return
    assert NumericMatch()(text, {"answer": text}) == 1.0
    shifted = value + 1.0 + abs(value) * 1e-3
    assert NumericMatch()(
        repr(shifted) if "e" not in repr(shifted) else "0.5", {"answer": text}
    ) == float(math.isclose(parse_number(repr(shifted)) or 0.5, value, rel_tol=1e-6, abs_tol=1e-6))


def test_numeric_match_tolerance_is_inclusive_bound():
    verifier = NumericMatch(rel_tol=0.0, abs_tol=0.5)
    assert verifier("3.4", {"answer": "3"}) == 1.0
    assert verifier("3.6", {"answer": "3"}) == 0.0


def test_parse_number_cases():
    assert parse_number("1/0") is None
    assert parse_number("$12") == 12.0
    assert parse_number("inf") is None
    assert parse_number("") is None


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="'extract' must be one of"):
        ExactMatch(extract="first_word")
    with pytest.raises(KeyError, match="no field 'answer'"):
        ExactMatch()("1", {"prompt": "?"})
    with pytest.raises(TypeError, match="'completion' must be str, got int"):
        ExactMatch()(1, {"answer": "1"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'sample' must be a mapping"):
        ExactMatch()("1", ["1"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference answer 'abc' is not a number"):
        NumericMatch()("1", {"answer": "abc"})
    with pytest.raises(ValueError, match="'rel_tol' and 'abs_tol' must be >= 0"):
        NumericMatch(rel_tol=-1.0)


