"""Chunk planning (rlobj/ops/chunking.py): a plan never exceeds the memory budget, splits the
vocabulary only when a whole row does not fit, and its row bounds cover every row once."""

from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.ops.chunking import chunk_bounds, plan_chunks


@given(n=st.integers(0, 5000), v=st.integers(1, 200000), buffers=st.integers(1, 12),
       budget=st.integers(1, 2**30))
@settings(max_examples=200, derandomize=True)
def test_plan_chunks_respects_budget(n, v, buffers, budget):
    plan = plan_chunks(n, v, buffers, budget_bytes=budget)
    assert 1 <= plan.rows <= max(n, 1) and 1 <= plan.cols <= v
    if buffers * 4 * v <= budget:  # a whole row fits: the vocabulary is never split
        assert plan.cols == v
    if plan.rows > 1 or plan.cols > 1:
        assert buffers * 4 * plan.rows * plan.cols <= budget
    bounds = chunk_bounds(n, plan.rows)
    assert sum(b - a for a, b in bounds) == n
