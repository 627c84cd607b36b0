"""WeightedSum (rlobj/verifiers/composite.py): hand values, pickling, nesting, errors."""

import pickle

import pytest

from rlobj.verifiers import (
    ExactMatch,
    NumericMatch,
    TagFormat,
    WeightedSum,
)


def test_weighted_sum_hand_values_and_pickles():
    reward = WeightedSum((ExactMatch(extract="answer_tag"), TagFormat()), (0.8, 0.2))
    assert reward("<think>.</think><answer>4</answer>", {"answer": "4"}) == pytest.approx(1.0)
    assert reward("<think>.</think><answer>5</answer>", {"answer": "4"}) == pytest.approx(0.2)
    assert reward("<answer>4</answer>", {"answer": "4"}) == pytest.approx(0.8)
    assert pickle.loads(pickle.dumps(reward)) == reward
    nested = WeightedSum((reward, NumericMatch()), (0.5, 0.5))
    assert nested("<think>.</think><answer>4</answer>", {"answer": "4"}) == pytest.approx(1.0)


def test_weighted_sum_errors():
    with pytest.raises(ValueError, match="same length, got 2 verifiers and 1 weights"):
        WeightedSum((ExactMatch(), TagFormat()), (1.0,))
    with pytest.raises(ValueError, match="at least one verifier"):
        WeightedSum((), ())
    with pytest.raises(ValueError, match="'weights' must be finite"):
        WeightedSum((ExactMatch(),), (float("nan"),))
    with pytest.raises(TypeError, match=r"verifiers\[0\] must be callable"):
        WeightedSum(("x",), (1.0,))  # type: ignore[arg-type]
