"""Task plumbing (rlobj/data/tasks.py): generate/stream determinism, the hash split, argument errors.
Each generator has its own test module (test_arithmetic.py, test_countdown.py, test_logic.py)."""


import pytest

from rlobj.data import ArithmeticTask, generate, in_split


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


def test_generator_errors_name_the_argument():
    with pytest.raises(ValueError, match="'count' must be an int >= 0"):
        generate(ArithmeticTask(), -1)
