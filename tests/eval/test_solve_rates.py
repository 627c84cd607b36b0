"""Solve-rate tables (rlobj/eval/solve_rates.py): support shrinkage / expansion counts on a hand
example, bad input."""


import pytest

from rlobj.eval import (
    compare_solve_rates,
)


# =========================================================================== solve-rate tables
def test_solve_rate_table_counts_on_a_hand_example():
    before = {"p1": (8, 3), "p2": (8, 1), "p3": (8, 0), "p4": (8, 0), "p5": (8, 8), "p6": (8, 2)}
    after = {"p1": (8, 7), "p2": (8, 0), "p3": (8, 2), "p4": (8, 0), "p5": (8, 8), "p6": (8, 0)}
    comparison = compare_solve_rates(before, after)
    # p1 preserved (3 -> 7), p2 shrinkage (1 -> 0), p3 expansion (0 -> 2), p4 out (0 -> 0),
    # p5 preserved (8 -> 8), p6 shrinkage (2 -> 0)
    assert [row.support for row in comparison.rows] == [
        "preserved", "shrinkage", "expansion", "out of support", "preserved", "shrinkage"]
    assert comparison.counts == {"preserved": 2, "shrinkage": 2, "expansion": 1, "out of support": 1,
                                 "improved": 2, "worse": 2, "same": 2}
    # pass@1 = mean solve rate: before 14/48, after 17/48 ; pass@8 = fraction in support: 4/6 vs 3/6
    assert comparison.pass_at_k(1, "before") == pytest.approx(14 / 48)
    assert comparison.pass_at_k(1, "after") == pytest.approx(17 / 48)
    assert comparison.pass_at_k(8, "before") == pytest.approx(4 / 6)
    assert comparison.pass_at_k(8, "after") == pytest.approx(3 / 6)
    text = comparison.table(labels=("base", "rl"))
    assert text.splitlines()[0].split() == ["problem", "base", "c/n", "rate", "rl", "c/n", "rate", "change", "support"]
    assert "p2            1/8  0.12     0/8  0.00   -0.12  shrinkage" in text  # 1/8 = 0.125 prints as 0.12
    assert "support: preserved 2, shrinkage 2, expansion 1, out of support 1 (of 6 problems)" in text
    # a stricter support threshold (3 correct of 8): p1 and p5 preserved, p2, p3, p4, p6 out of support
    strict = compare_solve_rates(before, after, min_correct=3).counts
    assert (strict["preserved"], strict["shrinkage"], strict["expansion"], strict["out of support"]) == (2, 0, 0, 4)


def test_solve_rate_bad_input():
    with pytest.raises(ValueError, match=r"only in before: \['b'\], only in after: \[\]"):
        compare_solve_rates({"a": (2, 1), "b": (2, 0)}, {"a": (2, 1)})
    with pytest.raises(ValueError, match=r"after\['a'\] needs n >= 1 and 0 <= c <= n, got n=2, c=3"):
        compare_solve_rates({"a": (2, 1)}, {"a": (2, 3)})
    with pytest.raises(ValueError, match=r"before\['a'\] must be an \(n, c\) pair of ints"):
        compare_solve_rates({"a": (2.0, 1)}, {"a": (2, 1)})
    with pytest.raises(ValueError, match="min_correct must be an int >= 1, got 0"):
        compare_solve_rates({"a": (2, 1)}, {"a": (2, 1)}, min_correct=0)
