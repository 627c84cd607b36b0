"""RLPR std filter (rlobj/rollout/filters.py): hand values, a plain-loop reference on Hypothesis
inputs, properties (beta = 0 keeps all; the largest-std group is kept first; the EMA update is
a convex combination; schedule of tracking and filtering), bad input.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.filters import std_filter

F64 = torch.float64


def test_hand_values_and_schedule():
    rewards = torch.tensor([0.0, 1.0, 0.5, 0.5, 0.2, 0.4], dtype=F64)
    group_ids = torch.tensor([0, 0, 1, 1, 2, 2])
    # Bessel stds: group 0: |0 - 1| / sqrt(2) = .707107; group 1: 0; group 2: .2 / sqrt(2) = .141421
    # mean = (.707107 + 0 + .141421) / 3 = .282843
    early = std_filter(rewards, group_ids, ema=None, step=3)  # before ema_start: nothing tracked, all kept
    assert early.ema is None and early.keep.all()
    first = std_filter(rewards, group_ids, ema=None, step=6)  # first update: the plain mean
    assert first.ema == pytest.approx(0.282843, abs=1e-6) and first.keep.all()  # step < filter_start
    # step 11, previous EMA .3: EMA = .99 * .3 + .01 * .282843 = .299828; threshold .5 * .299828 = .149914:
    # keep group 0 (.707) only; group 2 (.141) and group 1 (0) are dropped
    later = std_filter(rewards, group_ids, ema=0.3, step=11)
    assert later.ema == pytest.approx(0.99 * 0.3 + 0.01 * 0.282843, abs=1e-8)
    assert later.keep.tolist() == [True, True, False, False, False, False]
    torch.testing.assert_close(later.group_std, torch.tensor([0.5**0.5] * 2 + [0.0] * 2 + [0.02**0.5] * 2, dtype=F64))
    # population std (unbiased=False): group 2 .1, group 0 .5
    assert std_filter(rewards, group_ids, ema=0.3, step=11, unbiased=False).group_std[4] == pytest.approx(0.1)


@st.composite
def inputs(draw):
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=5))
    group_ids = [g for g, size in enumerate(sizes) for _ in range(size)]
    rewards = draw(st.lists(st.floats(0, 1), min_size=len(group_ids), max_size=len(group_ids)))
    order = draw(st.permutations(range(len(group_ids))))
    return [rewards[i] for i in order], [group_ids[i] for i in order]


def loop_reference(rewards, group_ids, ema, step, beta, rate, unbiased):
    stds = {}
    for g in dict.fromkeys(group_ids):
        values = [r for r, h in zip(rewards, group_ids) if h == g]
        mean = sum(values) / len(values)
        denominator = (len(values) - 1) if unbiased else len(values)
        stds[g] = math.sqrt(sum((v - mean) ** 2 for v in values) / denominator) if len(values) > 1 else 0.0
    mean_std = sum(stds.values()) / len(stds)
    if step >= 6:
        ema = mean_std if ema is None else rate * ema + (1 - rate) * mean_std
    keep = [step < 11 or ema is None or stds[g] >= beta * ema for g in group_ids]
    return keep, ema


@given(inputs(), st.one_of(st.none(), st.floats(0, 1)), st.integers(0, 15), st.floats(0, 1.5), st.floats(0, 1),
       st.booleans())
def test_matches_loop_reference(data, ema, step, beta, rate, unbiased):
    rewards, group_ids = data
    out = std_filter(torch.tensor(rewards, dtype=F64), torch.tensor(group_ids), ema, step, beta, rate,
                     unbiased=unbiased)
    keep, new_ema = loop_reference(rewards, group_ids, ema, step, beta, rate, unbiased)
    if new_ema is None:
        assert out.ema is None
    else:
        assert out.ema == pytest.approx(new_ema, abs=1e-12)
    # stds equal to the threshold up to rounding can go either way: compare away from the boundary
    threshold = beta * (out.ema or 0.0)
    for i, kept in enumerate(keep):
        if abs(float(out.group_std[i]) - threshold) > 1e-9:
            assert bool(out.keep[i]) == kept


@given(inputs(), st.floats(0, 1), st.floats(0, 1))
def test_properties(data, ema, rate):
    rewards, group_ids = data
    r, g = torch.tensor(rewards, dtype=F64), torch.tensor(group_ids)
    assert std_filter(r, g, ema, step=20, beta=0.0).keep.all()  # beta = 0 keeps everything
    out = std_filter(r, g, ema, step=20, rate=rate)
    # convex combination: the new EMA lies between the old one and this step's mean std
    stds = {int(k): float(out.group_std[g == k][0]) for k in torch.unique(g)}
    mean_std = sum(stds.values()) / len(stds)
    assert min(ema, mean_std) - 1e-12 <= out.ema <= max(ema, mean_std) + 1e-12
    # monotone: whenever a group is kept, every group with a larger std is kept too
    kept_stds = [s for k, s in stds.items() if bool(out.keep[g == k].all())]
    if kept_stds:
        assert all(bool(out.keep[g == k].all()) for k, s in stds.items() if s >= min(kept_stds))
    # and the largest-std group is the last to go
    if not all(s == 0 for s in stds.values()):
        best = max(stds, key=stds.get)
        for beta in (0.5, 1.0, 2.0):
            o = std_filter(r, g, ema, step=20, beta=beta, rate=rate)
            if o.keep.any():
                assert bool(o.keep[g == best].all())


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"rewards: std_filter expected a float tensor of shape \(batch,\)"):
        std_filter(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), None, 0)
    with pytest.raises(RlobjInputError, match=r"group_ids: expected shape \(batch\) = \(2,\), got \(3,\)"):
        std_filter(torch.zeros(2), torch.zeros(3, dtype=torch.long), None, 0)
    with pytest.raises(RlobjInputError, match=r"std_filter.beta: expected >= 0, got -1"):
        std_filter(torch.zeros(2), torch.zeros(2, dtype=torch.long), None, 0, beta=-1)
    with pytest.raises(RlobjInputError, match=r"std_filter.rate: expected in \[0, 1\], got 2"):
        std_filter(torch.zeros(2), torch.zeros(2, dtype=torch.long), None, 0, rate=2)
    with pytest.raises(RlobjInputError, match=r"rewards: expected finite values"):
        std_filter(torch.tensor([0.0, float("nan")]), torch.zeros(2, dtype=torch.long), None, 0)
