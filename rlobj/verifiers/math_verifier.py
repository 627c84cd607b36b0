r"""Mathematical answer checking with Hugging Face's ``math-verify`` (parse gold and prediction to
SymPy, then compare numerically, symbolically, as sets/intervals/matrices)."""

import threading
from dataclasses import dataclass

from rlobj.verifiers.base import Sample, require_completion, require_field


def _timeouts_usable() -> bool:
    # math-verify implements its timeouts with signal.alarm, which only works in the main thread.
    return threading.current_thread() is threading.main_thread()


def parse_gold(gold: str, timeout_seconds: int | None = 5) -> list:
    r"""Parse a reference answer with math-verify. Text that carries its own delimiters (``$``,
    ``\boxed``, ``\(``, ``\[``; e.g. a MATH-style solution) is parsed as written; bare text
    (``42``, ``x^2+1``, ``\{1, 2\}``) is parsed wrapped in ``$...$`` first (unwrapped, math-verify
    would take only the last number of ``\{1, 2\}``), then as written. Raises ``ValueError``
    naming the text when nothing parses.

    Example:
        >>> parse_gold(r"\frac{1}{2}")[0]
        1/2
    """
    from math_verify import parse

    timeout = timeout_seconds if _timeouts_usable() else None
    delimited = any(marker in gold for marker in ("$", "\\boxed", "\\(", "\\["))
    attempts = (gold, f"${gold}$") if delimited else (f"${gold}$", gold)
    parsed: list = []
    for text in attempts:
        parsed = parse(text, parsing_timeout=timeout)
        if parsed:
            break
    if not parsed:
        raise ValueError(
            f"MathVerifier: could not parse the reference answer {gold!r} with math-verify"
        )
    return parsed


@dataclass(frozen=True)
class MathVerifier:
    r"""Reward 1 when math-verify judges the completion's final answer equal to the reference.

    $$ r = \mathbb{1}\big[\mathrm{verify}(\mathrm{parse}(a), \mathrm{parse}(y))\big] $$

    The prediction is parsed with LaTeX extraction (``\boxed{...}`` matched first when
    ``prefer_boxed``) and plain-expression extraction; the reference ``a = sample[answer_key]`` with
    :func:`parse_gold`. math-verify compares strings, numbers (``float_rounding`` decimals), SymPy
    simplification, sets, intervals and matrices.

    Args:
        answer_key: sample field with the reference (a number, LaTeX, or a MATH-style solution with
            ``\boxed{}``). Default ``"answer"``.
        prefer_boxed: give ``\boxed{}`` the highest extraction priority. Default ``True``.
        timeout_seconds: math-verify's own per-call timeout (``signal.alarm``, so it only applies
            in a main thread; in other threads it is off and the worker-pool timeout of
            :class:`~rlobj.verifiers.VerifierPool` is the guard). Default 5.
        float_rounding: decimals kept in numeric comparison (math-verify default 6).

    Example:
        >>> MathVerifier()(r"so the result is \boxed{0.5}", {"answer": r"\frac{1}{2}"})
        1.0
        >>> MathVerifier()("I get 41", {"answer": "42"})
        0.0

    References:
        math-verify (Hugging Face), https://github.com/huggingface/Math-Verify (v0.9 API:
        ``parse``, ``verify``, ``LatexExtractionConfig``, ``ExprExtractionConfig``).
    """

    answer_key: str = "answer"
    prefer_boxed: bool = True
    timeout_seconds: int = 5
    float_rounding: int = 6

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_seconds, int) and self.timeout_seconds >= 1):
            raise ValueError(
                f"MathVerifier: argument 'timeout_seconds' must be an int >= 1 (math-verify uses "
                f"signal.alarm), got {self.timeout_seconds!r}"
            )

    def __call__(self, completion: str, sample: Sample) -> float:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        completion = require_completion(completion, "MathVerifier")
        gold = parse_gold(
            str(require_field(sample, self.answer_key, "MathVerifier")), self.timeout_seconds
        )
        timeout = self.timeout_seconds if _timeouts_usable() else None
        predicted = parse(
            completion,
            extraction_config=[
                LatexExtractionConfig(boxed_match_priority=0 if self.prefer_boxed else 50),
                ExprExtractionConfig(),
            ],
            parsing_timeout=timeout,
        )
        if not predicted:
            return 0.0
        same = verify(gold, predicted, float_rounding=self.float_rounding, timeout_seconds=timeout)
        return 1.0 if same else 0.0
