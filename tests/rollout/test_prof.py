"""PROF's process-consistency filter (rlobj/rollout/prof.py): hand values with the arithmetic in comments,
a plain-loop reference on Hypothesis inputs with the properties of the specs (section 16), the random
balanced subset of PROF-POS, the kept rows under grpo / dr_grpo / dapo, bad input."""

import pytest
import torch
from batches import F64, leaf, make_batch, presets
from hypothesis import given
from hypothesis import strategies as st

from rlobj import Objective
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.filters import (
    prof_balanced_counts,
    prof_filter,
)

PRESETS = presets()


# --------------------------------------------------------------------------- PROF
def test_prof_hand_values():
    # one group of 6, m = 4 -> (k+, k-) = (2, 2)
    # correct PRM means: row 0 (.9 + .7)/2 = .8, row 1 .2, row 2 .6 -> keep .8 and .6 (rows 0, 2)
    # wrong: r^pro = -mean: row 3 -.1, row 4 -.8, row 5 -.5 -> keep the two highest: rows 3, 5
    correct = torch.tensor([True, True, True, False, False, False])
    scores = torch.tensor([[0.9, 0.7], [0.2, 0.0], [0.6, 0.0], [0.1, 0.0], [0.8, 0.0], [0.5, 0.0]])
    mask = torch.tensor([[True, True]] + [[True, False]] * 5)
    out = prof_filter(correct, scores, mask, torch.zeros(6, dtype=torch.long), keep=4)
    assert out.keep.tolist() == [True, False, True, True, False, True]
    torch.testing.assert_close(out.consistency, torch.tensor([0.8, 0.2, 0.6, -0.1, -0.8, -0.5]))
    # lambda = .5 penalises single-step rows (1, 2, 3, 4, 5): correct 1: .2 - .5 = -.3, 2: .1 -> keep rows 0, 2 still;
    # wrong: r^pro = -(mean - .5): 3: .4, 4: -.3, 5: 0 -> keep rows 3, 5
    out = prof_filter(correct, scores, mask, torch.zeros(6, dtype=torch.long), keep=4, lam=0.5)
    torch.testing.assert_close(out.consistency, torch.tensor([0.8, -0.3, 0.1, 0.4, -0.3, 0.0]))
    # balanced counts: 1 correct of 6, m = 4 -> (1, 3); 5 correct, m = 3 -> (2, 1) (odd: extra slot to correct)
    assert prof_balanced_counts(1, 5, 4) == (1, 3) and prof_balanced_counts(5, 1, 3) == (2, 1)
    assert prof_balanced_counts(3, 3, 3) == (2, 1) and prof_balanced_counts(0, 4, 2) == (0, 2)


@st.composite
def prof_inputs(draw):
    sizes = draw(st.lists(st.integers(2, 6), min_size=1, max_size=3))
    keep = draw(st.integers(1, min(sizes)))
    ids = [g for g, n in enumerate(sizes) for _ in range(n)]
    n = len(ids)
    correct = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    scores = draw(st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=4, max_size=4),
                           min_size=n, max_size=n))
    return correct, scores, steps, ids, keep


def loop_prof(correct, scores, steps, ids, keep, lam, long_steps):
    pro = []
    for c, row, h in zip(correct, scores, steps):
        mean = sum(row[:h]) / h
        odd = h == 1 or (long_steps is not None and h >= long_steps)
        pro.append((mean - lam * odd) * (1 if c else -1))
    kept = [False] * len(ids)
    for g in set(ids):
        pos = [i for i in range(len(ids)) if ids[i] == g and correct[i]]
        neg = [i for i in range(len(ids)) if ids[i] == g and not correct[i]]
        best = max(range(keep + 1), key=lambda k: (k <= len(pos) and keep - k <= len(neg), k * (keep - k), k))
        for side, k in ((pos, best), (neg, keep - best)):
            for i in sorted(side, key=lambda i: (-pro[i], i))[:k]:
                kept[i] = True
    return kept, pro


@given(prof_inputs(), st.sampled_from([0.0, 0.3]), st.sampled_from([None, 3]))
def test_prof_matches_loop_and_properties(data, lam, long_steps):
    correct, scores, steps, ids, keep = data
    mask = torch.arange(4)[None, :] < torch.tensor(steps)[:, None]
    out = prof_filter(torch.tensor(correct), torch.tensor(scores, dtype=F64), mask, torch.tensor(ids), keep,
                      lam=lam, long_steps=long_steps)
    kept, pro = loop_prof(correct, scores, steps, ids, keep, lam, long_steps)
    assert out.keep.tolist() == kept
    torch.testing.assert_close(out.consistency, torch.tensor(pro, dtype=F64))
    for g in set(ids):
        rows = [i for i in range(len(ids)) if ids[i] == g]
        assert sum(out.keep[i] for i in rows) == keep  # k+ + k- = m
        for side in (True, False):
            chosen = [pro[i] for i in rows if out.keep[i] and correct[i] == side]
            left = [pro[i] for i in rows if not out.keep[i] and correct[i] == side]
            if chosen and left:
                assert min(chosen) >= max(left)
    # idempotent when m = n: every row kept
    if all(ids.count(g) == keep for g in set(ids)):
        assert out.keep.all()


def test_prof_pos_variant_keeps_a_random_balanced_subset():
    correct = torch.tensor([True, True, False, False, False, False])
    scores = torch.tensor([[0.9], [0.1], [0.1], [0.2], [0.3], [0.4]])
    mask = torch.ones(6, 1, dtype=torch.bool)
    seen = set()
    for seed in range(20):
        out = prof_filter(correct, scores, mask, torch.zeros(6, dtype=torch.long), keep=4, variant="pos",
                          generator=torch.Generator().manual_seed(seed))
        assert out.keep[:2].tolist() == [True, True] and int(out.keep[2:].sum()) == 2
        seen.add(tuple(out.keep[2:].tolist()))
    assert len(seen) > 1  # random, not by PRM score


@PRESETS
def test_prof_kept_rows_under_presets(preset):
    fields = make_batch([6, 6], [4, 2, 5, 3, 1, 4, 6, 2, 3, 3, 2, 1], seed=6)
    scores = torch.rand(12, 3, generator=torch.Generator().manual_seed(0))
    out = prof_filter(fields["rewards"] > 0.5, scores, torch.ones(12, 3, dtype=torch.bool), fields["group_ids"], keep=4)
    batch = {k: v[out.keep] for k, v in fields.items() if k != "extras"}
    batch["extras"] = {"accuracy": (batch["rewards"] > 0.5).to(batch["rewards"].dtype)}  # dapo's filter reads it
    result = Objective(preset)(**leaf(batch))
    assert torch.isfinite(result.loss) and int(out.keep.sum()) == 8
    assert not out.consistency.requires_grad


def test_prof_bad_input():
    c, s, m, g = torch.tensor([True, False]), torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, dtype=torch.long)
    with pytest.raises(RlobjInputError, match=r"prof_filter.keep: a group of 2 responses cannot keep 3"):
        prof_filter(c, s, m, g, keep=3)
    with pytest.raises(RlobjInputError, match=r"correct: prof_filter expected a 1-D bool tensor"):
        prof_filter(torch.tensor([1, 0]), s, m, g, keep=2)
    with pytest.raises(RlobjInputError, match=r"step_mask: expected shape \(batch steps\) = \(2, 2\), got \(2, 3\)"):
        prof_filter(c, s, torch.ones(2, 3, dtype=torch.bool), g, keep=2)
    with pytest.raises(RlobjInputError, match=r"step_mask: prof_filter needs at least one step per response, rows \[1\]"):
        prof_filter(c, s, torch.tensor([[True, False], [False, False]]), g, keep=2)
    with pytest.raises(RlobjInputError, match=r"step_scores: expected finite values"):
        prof_filter(c, torch.tensor([[1.0, float("nan")], [0.0, 0.0]]), m, g, keep=2)
    with pytest.raises(RlobjInputError, match=r"prof_filter.variant: expected 'both' or 'pos', got 'x'"):
        prof_filter(c, s, m, g, keep=2, variant="x")
    with pytest.raises(RlobjInputError, match=r"prof_filter.lam: expected >= 0, got -1"):
        prof_filter(c, s, m, g, keep=2, lam=-1)
