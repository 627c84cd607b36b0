"""CountdownTask (rlobj/data/countdown.py): samples solved by their reference answer, use_all,
bad arguments named."""

import pytest

from rlobj.data import CountdownTask, generate
from rlobj.verifiers import evaluate_expression


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


def test_countdown_errors_name_the_argument():
    with pytest.raises(ValueError, match="'n_numbers' must be an int in"):
        CountdownTask(n_numbers=1)
