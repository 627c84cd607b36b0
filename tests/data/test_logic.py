"""Knights-and-knaves puzzles (rlobj/data/logic.py): statements evaluated and rendered by hand,
generated puzzles with a unique solution that verifies while every flipped role fails."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.data import KnightsKnavesTask
from rlobj.data.logic import evaluate_statement, render_statement, solutions


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


def test_knights_knaves_errors_name_the_argument():
    with pytest.raises(ValueError, match="'depth' must be an int in"):
        KnightsKnavesTask(depth=1)
    with pytest.raises(ValueError, match="'n_people' must be an int in"):
        KnightsKnavesTask(n_people=9)
