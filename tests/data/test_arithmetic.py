"""ArithmeticTask (rlobj/data/arithmetic.py): determinism, the digits/operators/spaces knobs, reference answers
that verify and perturbed ones that fail, bad arguments named."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.data import ArithmeticTask, generate, stream
from rlobj.verifiers import evaluate_expression


def test_arithmetic_default_is_two_number_addition_with_digit_answers():
    samples = generate(ArithmeticTask(), 200, seed=3)
    for sample in samples:
        left, right = sample["expression"].split("+")
        assert 0 <= int(left) <= 99 and 0 <= int(right) <= 99
        assert sample["prompt"] == f"{left}+{right}="
        assert sample["answer"] == str(int(left) + int(right)) and sample["answer"].isdigit()
    assert generate(ArithmeticTask(), 50, seed=3) == samples[:50]
    assert generate(ArithmeticTask(), 50, seed=4) != samples[:50]


def test_arithmetic_precedence_digits_and_spaces():
    assert evaluate_expression("2+3*4")[0] == 14
    task = ArithmeticTask.with_digits(3, n_operands=3, operators=("+", "-", "*"), spaces=True)
    for sample in generate(task, 50, seed=0):
        numbers = [int(token) for token in sample["expression"].split() if token.isdigit()]
        assert len(numbers) == 3 and all(100 <= number <= 999 for number in numbers)
        assert int(sample["answer"]) == eval(sample["expression"])  # noqa: S307 - digits and + - * only
    first = next(stream(ArithmeticTask(), seed=1))
    assert first == generate(ArithmeticTask(), 1, seed=1)[0]


@settings(max_examples=30)
@given(
    seed=st.integers(0, 10_000),
    digits=st.integers(1, 4),
    operands=st.integers(2, 4),
    operators=st.sets(st.sampled_from(["+", "-", "*"]), min_size=1).map(sorted),
    shift=st.integers(1, 1000),
)
def test_arithmetic_answers_verify_and_perturbed_answers_fail(
    seed, digits, operands, operators, shift
):
    task = ArithmeticTask.with_digits(digits, n_operands=operands, operators=tuple(operators))
    verifier = task.verifier()
    for sample in generate(task, 5, seed=seed):
        assert verifier(sample["answer"], sample) == 1.0
        assert verifier(str(int(sample["answer"]) + shift), sample) == 0.0
        assert verifier(sample["answer"] + "0", sample) == 0.0


def test_arithmetic_errors_name_the_argument():
    with pytest.raises(ValueError, match="'n_operands' must be an int >= 2"):
        ArithmeticTask(n_operands=1)
    with pytest.raises(ValueError, match="'operators' must be a non-empty subset"):
        ArithmeticTask(operators=("/",))
    with pytest.raises(ValueError, match="'prompt_format' must contain"):
        ArithmeticTask(prompt_format="no slot")
    with pytest.raises(ValueError, match="'split' must be one of"):
        ArithmeticTask(split="validation")
    with pytest.raises(ValueError, match="'digits' must be an int >= 1"):
        ArithmeticTask.with_digits(0)
