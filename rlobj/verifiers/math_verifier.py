r"""Mathematical answer checking with Hugging Face's ``math-verify`` (parse gold and prediction to
SymPy, then compare numerically, symbolically, as sets/intervals/matrices)."""

import logging
import threading
from dataclasses import dataclass

from rlobj.verifiers.base import Sample, require_completion, require_field

LOGGED_INPUT_CHARS = 120


class _OneLineTimeouts(logging.Filter):
    """math-verify logs ``Timeout during parsing: <the whole input>``; keep one line with the
    input's length and its first ``LOGGED_INPUT_CHARS`` characters."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Timeout during"):
            head, _, text = message.partition(": ")
            flat = " ".join(text.split())
            cut = flat[:LOGGED_INPUT_CHARS] + ("..." if len(flat) > LOGGED_INPUT_CHARS else "")
            record.msg = (
                f"{head} (math-verify; input of {len(text)} chars): {cut}" if text else head
            )
            record.args = ()
        return True


for _name in ("math_verify.parser", "math_verify.grader"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(existing, _OneLineTimeouts) for existing in _logger.filters):
        _logger.addFilter(_OneLineTimeouts())


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
        timeout_seconds: math-verify's own per-call timeout (``signal.alarm``, so it only works
            in a main thread). Default 5.
        float_rounding: decimals kept in numeric comparison (math-verify default 6).
        allow_without_timeout: outside the main thread there is no timeout, and a pathological
            answer (a power tower such as ``9^{9^{9^9}}``) would hang the process, so such calls
            raise ``RuntimeError`` unless this is ``True`` (the caller enforces its own hard
            timeout). Score through :class:`~rlobj.verifiers.VerifierPool` instead: its workers
            run verifiers in their main thread and are killed at the pool's timeout.
            Default ``False``.

    math-verify's timeout warnings are shortened to one line with at most 120 characters of the
    input (it logs the whole input, megabytes for a long completion).

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
    allow_without_timeout: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_seconds, int) and self.timeout_seconds >= 1):
            raise ValueError(
                f"MathVerifier: argument 'timeout_seconds' must be an int >= 1 (math-verify uses "
                f"signal.alarm), got {self.timeout_seconds!r}"
            )

    def __call__(self, completion: str, sample: Sample) -> float:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        completion = require_completion(completion, "MathVerifier")
        if not (_timeouts_usable() or self.allow_without_timeout):
            raise RuntimeError(
                "MathVerifier: called outside the main thread, where math-verify's timeout "
                "(signal.alarm) cannot work and a pathological answer would hang the process; "
                "score through VerifierPool (workers run verifiers in their main thread and are "
                "killed at the pool's timeout), or pass allow_without_timeout=True if the caller "
                "enforces its own hard timeout"
            )
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
