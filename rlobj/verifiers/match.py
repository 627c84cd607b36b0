r"""String and number matching verifiers: :class:`ExactMatch` and :class:`NumericMatch`."""

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from rlobj.verifiers.base import Sample, require_completion, require_field
from rlobj.verifiers.extract import check_extract_mode, extract_answer


def normalize_answer(text: str, case_sensitive: bool = False) -> str:
    """Canonical form used by :class:`ExactMatch`: strip, collapse internal whitespace to one space,
    drop one trailing period, and lower-case unless ``case_sensitive``.

    Example:
        >>> normalize_answer("  The   Answer.\\n")
        'the answer'
    """
    collapsed = re.sub(r"\s+", " ", text).strip()
    if collapsed.endswith("."):
        collapsed = collapsed[:-1].rstrip()
    return collapsed if case_sensitive else collapsed.lower()


def parse_number(text: str) -> float | None:
    """Parse ``-1,234.5``, ``3/4``, ``1e-3`` or ``50%`` (as 0.5) to a float; ``None`` if not a number.

    Example:
        >>> parse_number("1,234.5")
        1234.5
        >>> parse_number(" 3 / 4 ")
        0.75
        >>> parse_number("50%")
        0.5
        >>> parse_number("seven") is None
        True
    """
    cleaned = text.strip().replace(",", "").replace(" ", "").lstrip("$")
    scale = 1.0
    if cleaned.endswith("%"):
        cleaned, scale = cleaned[:-1], 0.01
    try:
        if "/" in cleaned:
            numerator, denominator = cleaned.split("/", 1)
            value = float(Fraction(int(numerator), int(denominator)))
        else:
            value = float(cleaned)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value * scale if math.isfinite(value) else None


@dataclass(frozen=True)
class ExactMatch:
    r"""Reward 1 when the extracted answer equals the reference after normalisation.

    $$ r = \mathbb{1}[\,\mathrm{norm}(\mathrm{extract}(y)) = \mathrm{norm}(a)\,] $$

    with $y$ the completion, $a$ = ``sample[answer_key]`` and ``norm`` = :func:`normalize_answer`.

    Args:
        extract: how to find the answer in the completion (see :mod:`rlobj.verifiers.extract`);
            ``"whole"`` (default) compares the whole stripped completion, which is what the default
            arithmetic run (answers written as plain digits) needs.
        answer_key: field of the sample holding the reference answer. Default ``"answer"``.
        case_sensitive: compare case-sensitively. Default ``False``.

    Example:
        >>> ExactMatch()(" 46 ", {"answer": "46"})
        1.0
        >>> ExactMatch(extract="answer_tag")("<answer>Paris.</answer>", {"answer": "paris"})
        1.0
        >>> ExactMatch()("47", {"answer": "46"})
        0.0
    """

    extract: str = "whole"
    answer_key: str = "answer"
    case_sensitive: bool = False

    def __post_init__(self) -> None:
        check_extract_mode(self.extract, "ExactMatch")

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "ExactMatch")
        gold = str(require_field(sample, self.answer_key, "ExactMatch"))
        predicted = extract_answer(completion, self.extract)
        if predicted is None:
            return 0.0
        same = normalize_answer(predicted, self.case_sensitive) == normalize_answer(
            gold, self.case_sensitive
        )
        return 1.0 if same else 0.0


@dataclass(frozen=True)
class NumericMatch:
    r"""Reward 1 when the extracted number is close to the reference number.

    $$ r = \mathbb{1}\big[\,|\hat x - x^\star| \le \max(\mathrm{rel\_tol}\cdot\max(|\hat x|, |x^\star|),\ \mathrm{abs\_tol})\,\big] $$

    (Python's ``math.isclose``), $\hat x$ parsed by :func:`parse_number` from the extracted span,
    $x^\star$ from ``sample[answer_key]``. An unparsable prediction scores 0; an unparsable
    reference raises ``ValueError`` (it is a data error, not a model error).

    Args:
        extract: extraction mode, default ``"last_number"``.
        answer_key: field holding the reference. Default ``"answer"``.
        rel_tol: relative tolerance, default ``1e-6``.
        abs_tol: absolute tolerance, default ``1e-6``.

    Example:
        >>> NumericMatch()("so x = 0.3333333", {"answer": "1/3"})
        1.0
        >>> NumericMatch(abs_tol=0.1, rel_tol=0.0)("3.2", {"answer": "3"})
        0.0
    """

    extract: str = "last_number"
    answer_key: str = "answer"
    rel_tol: float = 1e-6
    abs_tol: float = 1e-6

    def __post_init__(self) -> None:
        check_extract_mode(self.extract, "NumericMatch")
        if not (self.rel_tol >= 0 and self.abs_tol >= 0):
            raise ValueError(
                f"NumericMatch: arguments 'rel_tol' and 'abs_tol' must be >= 0, got {self.rel_tol}, {self.abs_tol}"
            )

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "NumericMatch")
        gold_text = str(require_field(sample, self.answer_key, "NumericMatch"))
        gold = parse_number(gold_text)
        if gold is None:
            raise ValueError(f"NumericMatch: reference answer {gold_text!r} is not a number")
        span = extract_answer(completion, self.extract)
        predicted = None if span is None else parse_number(span)
        if predicted is None:
            return 0.0
        return (
            1.0
            if math.isclose(predicted, gold, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
            else 0.0
        )
