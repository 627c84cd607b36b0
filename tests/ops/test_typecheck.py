"""The one typecheck switch: on with RLOBJ_TYPECHECK=1, off otherwise, skipped when compiling."""

import pytest
import torch
from jaxtyping import Float
from torch import Tensor

from rlobj.ops import typecheck
from rlobj.ops.typecheck import typechecked, typechecks_enabled


@typechecked
def row_sums(values: Float[Tensor, "batch seq"]) -> Float[Tensor, " batch"]:
    return values.sum(-1)


def test_checks_follow_the_environment_switch(monkeypatch):
    monkeypatch.setenv("RLOBJ_TYPECHECK", "1")
    assert typechecks_enabled()
    assert row_sums(torch.ones(2, 3)).shape == (2,)
    with pytest.raises(Exception, match="values"):
        row_sums(torch.ones(2, 3, 4))
    monkeypatch.setenv("RLOBJ_TYPECHECK", "0")
    assert not typechecks_enabled()
    assert row_sums(torch.ones(2, 3, 4)).shape == (2, 3)  # unchecked: runs as plain Python


def test_checks_are_skipped_inside_compiled_regions(monkeypatch):
    monkeypatch.setenv("RLOBJ_TYPECHECK", "1")
    monkeypatch.setattr(typecheck, "_compiling", lambda: True)
    assert row_sums(torch.ones(2, 3, 4)).shape == (2, 3)


def test_the_suite_runs_with_checks_on():
    assert typechecks_enabled(), "scripts/test.sh sets RLOBJ_TYPECHECK=1"
