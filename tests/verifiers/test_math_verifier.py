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


def test_outside_the_main_thread_refuses_unless_allowed():
    results = []

    def call(verifier):
        try:
            results.append(verifier(r"\boxed{2}", {"answer": "2"}))
        except RuntimeError as error:
            results.append(str(error))

    for verifier in (MathVerifier(), MathVerifier(allow_without_timeout=True)):
        thread = threading.Thread(target=call, args=(verifier,))
        thread.start()
        thread.join()
    assert "outside the main thread" in results[0] and "VerifierPool" in results[0]
    assert results[1] == 1.0


def test_a_power_tower_in_a_pool_worker_times_out_and_the_pool_goes_on():
    from rlobj.verifiers import VerifierPool

    with VerifierPool(workers=1, timeout=3.0, memory_limit_mb=0) as pool:
        result = pool.score(
            MathVerifier(timeout_seconds=1),
            [r"\boxed{9^{9^{9^{9}}}}", r"\boxed{2}"],
            [{"answer": "2"}] * 2,
        )
    assert result.statuses[1] == "ok" and result.rewards == (0.0, 1.0)
    assert result.statuses[0] in ("ok", "timeout")  # math-verify's own timeout, or the pool's


def test_timeout_warnings_are_one_short_line(caplog):
    import logging

    long_input = "x + " * 50_000 + "\n1"
    with caplog.at_level(logging.WARNING, logger="math_verify.parser"):
        logging.getLogger("math_verify.parser").warning(f"Timeout during parsing: {long_input}")
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message and len(message) < 250, message
    assert f"input of {len(long_input)} chars" in message


def test_bad_timeout_argument():
    with pytest.raises(ValueError, match="'timeout_seconds' must be an int >= 1"):
        MathVerifier(timeout_seconds=0)
