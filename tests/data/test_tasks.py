"""Task generators: determinism, difficulty knobs, splits, and that reference answers verify."""

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.data import ArithmeticTask, CountdownTask, KnightsKnavesTask, generate, in_split, stream
from rlobj.data.logic import evaluate_statement, render_statement, solutions
from rlobj.verifiers import (
    CountdownVerifier,
    KnightsKnavesVerifier,
    evaluate_expression,
    solve_countdown,
)


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


def test_splits_are_disjoint_and_cover_everything():
    train = {sample["prompt"] for sample in generate(ArithmeticTask(split="train"), 3000, seed=0)}
    test = {sample["prompt"] for sample in generate(ArithmeticTask(split="test"), 300, seed=0)}
    assert train and test and not train & test
    prompts = [f"{a}+{b}=" for a in range(100) for b in range(100)]
    held_out = sum(in_split(prompt, "test", 0.1) for prompt in prompts) / len(prompts)
    assert 0.08 < held_out < 0.12
    assert all(
        in_split(prompt, "train", 0.1) != in_split(prompt, "test", 0.1) for prompt in prompts[:500]
    )


def test_countdown_samples_are_solved_by_their_reference():
    task = CountdownTask()
    verifier = task.verifier()
    for sample in generate(task, 40, seed=0):
        assert len(sample["numbers"]) == 4 and 10 <= sample["target"] <= 200
        assert verifier(f"<answer>{sample['answer']}</answer>", sample) == 1.0
        assert str(sample["target"]) in sample["prompt"]
    strict = CountdownTask(n_numbers=3, use_all=True)
    for sample in generate(strict, 20, seed=1):
        assert sorted(evaluate_expression(sample["answer"])[1]) == sorted(sample["numbers"])
        assert strict.verifier()(f"<answer>{sample['answer']}</answer>", sample) == 1.0


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


def test_statement_evaluation_and_rendering_by_hand():
    # Alice: "Bob is a knave"; Bob: "Alice and I are both knights" -> Alice knight, Bob knave.
    statements = [("is", 1, False), ("and", ("is", 0, True), ("is", 1, True))]
    assert solutions(statements) == [(True, False)]
    assert evaluate_statement(("iff", ("is", 0, True), ("is", 1, True)), (False, False)) is True
    assert render_statement(
        ("not", ("and", ("is", 0, True), ("is", 1, False))), ("Alice", "Bob")
    ) == ("it is not true that (Alice is a knight and Bob is a knave)")


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), people=st.integers(2, 5), depth=st.integers(2, 4))
def test_knights_knaves_unique_solution_verifies_and_flips_fail(seed, people, depth):
    task = KnightsKnavesTask(n_people=people, depth=depth)
    sample = task.sample(random.Random(seed))
    verifier = task.verifier()
    assert verifier(sample["answer"], sample) == 1.0
    statements = [eval(text) for text in sample["statements"]]  # noqa: S307 - our own tuple reprs
    (unique,) = solutions(statements)
    assert {
        name: ("knight" if knight else "knave")
        for name, knight in zip(sample["solution"], unique, strict=True)
    } == sample["solution"]
    for flipped_name in sample["solution"]:
        flipped = {
            name: (role if name != flipped_name else {"knight": "knave", "knave": "knight"}[role])
            for name, role in sample["solution"].items()
        }
        claim = ", ".join(f"{name} is a {role}" for name, role in flipped.items())
        assert verifier(claim, sample) == 0.0
    for name in sample["solution"]:
        assert name in sample["prompt"]


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


def test_generator_errors_name_the_argument():
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
    with pytest.raises(ValueError, match="'n_numbers' must be an int in"):
        CountdownTask(n_numbers=1)
    with pytest.raises(ValueError, match="'depth' must be an int in"):
        KnightsKnavesTask(depth=1)
    with pytest.raises(ValueError, match="'n_people' must be an int in"):
        KnightsKnavesTask(n_people=9)
    with pytest.raises(ValueError, match="'count' must be an int >= 0"):
        generate(ArithmeticTask(), -1)
