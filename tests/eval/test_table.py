"""The pass@k comparison table (rlobj/eval/table.py)."""

import pytest

from rlobj.eval import format_table


def test_table():
    text = format_table([("before", {"pass@1": 0.2, "pass@8": 0.5}), ("after", {"pass@1": 0.45, "pass@8": 0.7})])
    lines = text.splitlines()
    assert lines[0].split() == ["model", "pass@1", "pass@8"]
    assert lines[-1].split() == ["change", "+0.250", "+0.200"]
    with pytest.raises(ValueError):
        format_table([])
