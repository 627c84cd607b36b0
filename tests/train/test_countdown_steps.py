"""The small countdown with a written derivation (rlobj/train/countdown_steps.py)."""

import pytest

from rlobj.ops.tokenizer import ARITHMETIC_CHARS
from rlobj.train.countdown_steps import CountdownSteps, DerivationVerifier


def test_records_are_solvable_deterministic_and_use_the_default_characters():
    task = CountdownSteps(seed=3, high=9)
    verifier = DerivationVerifier()
    for index in range(300):
        record = task.record(index)
        assert record == task.record(index)
        assert verifier(record["completion"], record) == 1.0
        assert set(record["prompt"] + record["completion"]) <= set(ARITHMETIC_CHARS)
        numbers, target = record["numbers"], record["target"]
        assert record["prompt"] == f"{numbers[0]} {numbers[1]} {numbers[2]} {target}="
        assert all(1 <= n <= 9 for n in numbers) and len(record["completion"].split(" ")) == 2
    assert CountdownSteps(seed=4).record(0) != CountdownSteps(seed=3).record(0)


@pytest.mark.parametrize("completion, reward", [
    ("3*5=15 15+7=22", 1.0),
    ("7+3=10 10*5=50", 0.0),        # true equations, wrong target
    ("3*5=15 15+7=22 ", 1.0),       # trailing space
    ("3*5=15", 0.0),                # stops early
    ("3*5=16 16+6=22", 0.0),        # false equation
    ("3*5=15 15+5=20", 0.0),        # 5 used twice
    ("15+7=22", 0.0),               # 15 not available yet
    ("3*5=15 15+7=22 22-0=22", 0.0),  # 0 not given
    ("3x5=15 15+7=22", 0.0),        # not an equation
    ("", 0.0),
])
def test_derivation_verifier_by_hand(completion, reward):
    assert DerivationVerifier()(completion, {"numbers": [3, 5, 7], "target": 22}) == reward


def test_bad_input_is_named():
    with pytest.raises(KeyError, match="numbers"):
        DerivationVerifier()("1+1=2", {"target": 2})
    with pytest.raises(ValueError, match="CountdownSteps.high"):
        CountdownSteps(high=1)
