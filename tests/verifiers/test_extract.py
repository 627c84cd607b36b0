"""Answer extraction (rlobj/verifiers/extract.py): the last boxed content with nested braces, the last
tag, the last number, a blank last line."""

import pytest

from rlobj.verifiers import (
    extract_answer,
    last_boxed_content,
    last_number,
    tag_content,
)


def test_extraction_helpers():
    assert last_boxed_content(r"\boxed{a{b}c} and \boxed{d}") == "d"
    assert last_boxed_content(r"\boxed{unclosed") is None
    assert tag_content("<answer>1</answer><answer>2</answer>", "answer") == "2"
    assert last_number("none") is None
    assert extract_answer("\n\n", "last_line") is None


def test_extract_modes_and_code_blocks():
    from rlobj.verifiers.extract import EXTRACT_MODES, check_extract_mode, extract_code

    for mode in EXTRACT_MODES:
        check_extract_mode(mode)
    with pytest.raises(ValueError, match=r"^MathVerifier: argument 'extract' must be one of .*, got 'first_word'$"):
        check_extract_mode("first_word", "MathVerifier")
    with pytest.raises(ValueError, match=r"^argument 'extract' must be one of"):
        check_extract_mode("first_word")
    two = "```python\nprint(1)\n```\ntext\n```\nprint(2)\n```"
    assert extract_code(two) == "print(2)\n"  # the last fenced block
    assert extract_code("no fences") == "no fences"
