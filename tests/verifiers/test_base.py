"""The verifier protocol's helpers (rlobj/verifiers/base.py): a reward classified as ok or invalid, with
its range."""

import pytest

from rlobj.verifiers import validate_reward


def test_validate_reward_classification():
    assert validate_reward(True) == ("ok", 1.0, "")
    assert validate_reward(0) == ("ok", 0.0, "")
    assert validate_reward(None)[0] == "invalid"
    assert validate_reward(float("inf"))[0] == "invalid"
    assert validate_reward(-0.5)[0] == "invalid"
    assert validate_reward(-0.5, (-1.0, 1.0)) == ("ok", -0.5, "")


def test_require_field_and_completion_name_the_verifier():
    from rlobj.verifiers.base import require_completion, require_field

    assert require_field({"answer": "3", "id": 1}, "answer", "ExactMatch") == "3"
    with pytest.raises(KeyError, match=r"ExactMatch: sample has no field 'answer' \(expected it to hold the "
                                       r"reference\); fields present: \['id', 'prompt'\]"):
        require_field({"prompt": "?", "id": 1}, "answer", "ExactMatch")
    with pytest.raises(TypeError, match="ExactMatch: argument 'sample' must be a mapping \\(dict-like\\), got list"):
        require_field(["3"], "answer", "ExactMatch")
    assert require_completion("x", "ExactMatch") == "x"
    with pytest.raises(TypeError, match="NumericMatch: argument 'completion' must be str, got NoneType"):
        require_completion(None, "NumericMatch")
