"""TagFormat and RegexFormat (rlobj/verifiers/format_check.py): hand cases, full match and search,
errors."""


import pytest

from rlobj.verifiers import (
    RegexFormat,
    TagFormat,
)


@pytest.mark.parametrize(
    ("completion", "strict", "expected"),
    [
        ("<think>a</think><answer>b</answer>", True, 1.0),
        ("  <think>a\nb</think>\n\n<answer>b</answer>\n", True, 1.0),
        ("intro <think>a</think><answer>b</answer>", True, 0.0),
        ("intro <think>a</think><answer>b</answer>", False, 1.0),
        ("<answer>b</answer><think>a</think>", False, 0.0),
        ("<think>a</think><think>c</think><answer>b</answer>", False, 0.0),
        ("<think>a<answer>b</answer></think>", True, 0.0),
        ("<think>a</think>", True, 0.0),
        ("", True, 0.0),
    ],
)
def test_tag_format_hand_cases(completion, strict, expected):
    assert TagFormat(strict=strict)(completion, {}) == expected


def test_regex_format_full_and_search():
    assert RegexFormat(r"\d+")("123", {}) == 1.0
    assert RegexFormat(r"\d+", full=False)("abc 123", {}) == 1.0
    assert RegexFormat(r"\d+")("abc 123", {}) == 0.0


def test_format_errors():
    with pytest.raises(ValueError, match="'pattern' is not a valid regex"):
        RegexFormat("(")
    with pytest.raises(ValueError, match="'tags' must hold tag names"):
        TagFormat(tags=("a b",))
    with pytest.raises(ValueError, match="at least one tag"):
        TagFormat(tags=())
