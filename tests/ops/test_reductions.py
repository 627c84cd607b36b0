"""Masked reductions and group statistics: hand values, loop references on Hypothesis inputs,
gradient checks, padding never leaks (values or gradients), exact means of all-equal groups."""

import math
import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlobj.ops.reductions import (
    broadcast_to_tokens,
    group_all_equal,
    group_count,
    group_index,
    group_mean,
    group_std,
    group_sum,
    leave_one_out_mean,
    masked_mean,
    masked_sum,
    masked_var,
    returns_to_go,
    sequence_lengths,
    sequence_mean,
)

F64 = torch.float64
FLOATS = st.one_of(st.sampled_from([0.0, 1.0, 0.7, -0.5]), st.floats(-4, 4, allow_nan=False, allow_subnormal=False))


@st.composite
def token_batches(draw):
    """Values and a mask with holes anywhere (also empty rows); NaN/inf where the mask is False."""
    b, t = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    mask = [[draw(st.booleans()) for _ in range(t)] for _ in range(b)]
    garbage = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30])
    values = [[draw(FLOATS) if m else draw(garbage) for m in row] for row in mask]
    return torch.tensor(values, dtype=F64), torch.tensor(mask)


@st.composite
def grouped(draw, min_size=1):
    sizes = draw(st.lists(st.integers(min_size, 6), min_size=1, max_size=4))
    ids = draw(st.lists(st.integers(-5, 30), min_size=len(sizes), max_size=len(sizes), unique=True))
    gids = [g for g, n in zip(ids, sizes, strict=True) for _ in range(n)]
    order = draw(st.permutations(range(len(gids))))
    gids = [gids[i] for i in order]
    values = draw(st.lists(FLOATS, min_size=len(gids), max_size=len(gids)))
    return torch.tensor(values, dtype=F64), torch.tensor(gids)


def members(gids):
    out = {}
    for i, g in enumerate(gids.tolist()):
        out.setdefault(g, []).append(i)
    return out


# ----------------------------------------------------------------------------- hand values
def test_hand_masked_reductions():
    values = torch.tensor([[1.0, 2.0, float("nan")], [4.0, float("inf"), 6.0]])
    mask = torch.tensor([[True, True, False], [True, False, True]])
    # valid entries 1, 2, 4, 6: sum 13, mean 13/4 = 3.25
    assert float(masked_sum(values, mask)) == 13.0
    assert masked_sum(values, mask, dim=-1).tolist() == [3.0, 10.0]
    assert float(masked_mean(values, mask)) == 3.25
    assert masked_mean(values, mask, dim=-1).tolist() == [1.5, 5.0]
    # deviations -2.25, -1.25, 0.75, 2.75: squares 5.0625 + 1.5625 + 0.5625 + 7.5625 = 14.75
    assert float(masked_var(values, mask)) == pytest.approx(14.75 / 3)
    assert float(masked_var(values, mask, unbiased=False)) == pytest.approx(14.75 / 4)
    assert sequence_lengths(mask).tolist() == [2.0, 2.0]
    assert sequence_mean(values, mask).tolist() == [1.5, 5.0]
    assert broadcast_to_tokens(torch.tensor([7.0, -1.0]), mask).tolist() == [[7, 7, 0], [-1, 0, -1]]


def test_hand_empty_rows_and_masks():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    empty = torch.zeros(2, 2, dtype=torch.bool)
    assert float(masked_mean(values, empty)) == 0.0
    assert float(masked_var(values, empty)) == 0.0
    assert sequence_mean(values, torch.tensor([[True, True], [False, False]])).tolist() == [1.5, 0.0]


def test_hand_group_statistics():
    values = torch.tensor([1.0, 5.0, 0.0, 3.0, 2.0])
    gids = torch.tensor([9, -2, 9, -2, 4])
    index, n = group_index(gids)
    assert n == 3 and index.tolist() == [2, 0, 2, 0, 1]  # sorted ids -2, 4, 9
    assert group_sum(values, gids).tolist() == [1.0, 8.0, 1.0, 8.0, 2.0]
    assert group_count(gids).tolist() == [2.0, 2.0, 2.0, 2.0, 1.0]
    assert group_mean(values, gids).tolist() == [0.5, 4.0, 0.5, 4.0, 2.0]
    # group 9: (1, 0) -> squares 1/4 + 1/4: Bessel var 1/2, population 1/4; group -2: (5, 3) -> 2, 1
    assert group_std(values, gids).tolist() == pytest.approx([math.sqrt(0.5), math.sqrt(2), math.sqrt(0.5), math.sqrt(2), 0.0])
    assert group_std(values, gids, unbiased=False).tolist() == pytest.approx([0.5, 1.0, 0.5, 1.0, 0.0])
    # leave one out: 1 -> 0, 5 -> 3, 0 -> 1, 3 -> 5; the singleton gets 0 (empty sum)
    assert leave_one_out_mean(values, gids).tolist() == [0.0, 3.0, 1.0, 5.0, 0.0]


def test_hand_returns_to_go():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, float("nan")]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    # gamma 1: (6, 5, 3), (9, 5, 0)
    assert returns_to_go(rewards, mask).tolist() == [[6.0, 5.0, 3.0], [9.0, 5.0, 0.0]]
    # gamma 0.5: row 0: G2 = 3, G1 = 2 + 1.5 = 3.5, G0 = 1 + 1.75 = 2.75; row 1: G1 = 5, G0 = 4 + 2.5 = 6.5
    assert returns_to_go(rewards, mask, gamma=0.5).tolist() == [[2.75, 3.5, 3.0], [6.5, 5.0, 0.0]]
    # a hole in the mask: its reward is ignored, positions still count for the discount
    holes = torch.tensor([[True, False, True], [True, True, False]])
    # row 0: G2 = 3, G1 (masked) -> 0, G0 = 1 + 0.5*(0 + 0.5*3) = 1.75
    assert returns_to_go(rewards, holes, gamma=0.5)[0].tolist() == [1.75, 0.0, 3.0]


def test_hand_group_all_equal():
    values = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5])
    assert group_all_equal(values, torch.tensor([0, 0, 1, 1, 2])).tolist() == [True, True, False, False, True]
    # distinct tiny values: their squared deviations underflow in float32; group_std works in
    # float64 inside (so it sees them), and group_all_equal compares the values themselves
    tiny = torch.tensor([0.0, 1.78e-24])
    assert group_std(tiny, torch.tensor([0, 0])).tolist() == pytest.approx([1.2587e-24] * 2, rel=1e-3)
    assert group_all_equal(tiny, torch.tensor([0, 0])).tolist() == [False, False]


def test_all_equal_group_mean_is_exact_in_float32():
    # Regression: a plain sum/count of seven 0.7s in float32 is 0.7 + 6e-8.
    for v in (0.7, 0.1, 0.3, 1 / 3, 0.2):
        x = torch.full((7,), v)
        gids = torch.zeros(7, dtype=torch.long)
        assert torch.equal(group_mean(x, gids), x)
        assert torch.equal(group_std(x, gids), torch.zeros(7))
        assert torch.equal(leave_one_out_mean(x, gids), x)


# ----------------------------------------------------------------------------- loop references
@given(data=token_batches())
def test_masked_reductions_match_loops(data):
    values, mask = data
    rows = [[float(v) for v, m in zip(vr, mr, strict=True) if m] for vr, mr in zip(values, mask, strict=True)]
    flat = [v for row in rows for v in row]
    assert float(masked_sum(values, mask)) == pytest.approx(math.fsum(flat), abs=1e-9)
    assert masked_sum(values, mask, dim=-1).tolist() == pytest.approx([math.fsum(r) for r in rows], abs=1e-9)
    assert masked_mean(values, mask, dim=-1).tolist() == pytest.approx(
        [math.fsum(r) / len(r) if r else 0.0 for r in rows], abs=1e-9)
    assert sequence_mean(values, mask).tolist() == pytest.approx([math.fsum(r) / len(r) if r else 0.0 for r in rows], abs=1e-9)
    assert sequence_lengths(mask).tolist() == [len(r) for r in rows]
    if flat:
        m = math.fsum(flat) / len(flat)
        ss = math.fsum((v - m) ** 2 for v in flat)
        assert float(masked_var(values, mask, unbiased=False)) == pytest.approx(ss / len(flat), abs=1e-9)
        assert float(masked_var(values, mask)) == pytest.approx(ss / max(1, len(flat) - 1), abs=1e-9)
    for out in (masked_sum(values, mask, dim=-1), masked_mean(values, mask, dim=-1), masked_var(values, mask)):
        assert bool(torch.isfinite(out).all())  # NaN/inf in padding never leaks


@given(data=token_batches(), gamma=st.sampled_from([1.0, 0.9, 0.5, 0.0]))
def test_returns_to_go_matches_loops(data, gamma):
    values, mask = data
    got = returns_to_go(values, mask, gamma)
    for i in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            want = math.fsum(gamma ** (u - t) * float(values[i, u]) for u in range(t, mask.shape[1]) if mask[i, u]) \
                if mask[i, t] else 0.0
            assert float(got[i, t]) == pytest.approx(want, abs=1e-9)


@given(data=grouped())
def test_group_statistics_match_loops(data):
    values, gids = data
    v = values.tolist()
    s, c, m = group_sum(values, gids), group_count(gids), group_mean(values, gids)
    sd, sp, loo = group_std(values, gids), group_std(values, gids, unbiased=False), leave_one_out_mean(values, gids)
    for idx in members(gids).values():
        vals = [v[j] for j in idx]
        mu = math.fsum(vals) / len(vals)
        ss = 0.0 if max(vals) == min(vals) else math.fsum((x - mu) ** 2 for x in vals)
        for j in idx:
            assert float(s[j]) == pytest.approx(math.fsum(vals), abs=1e-9)
            assert float(c[j]) == len(vals)
            assert float(m[j]) == pytest.approx(mu, abs=1e-12)
            assert float(sd[j]) == pytest.approx(math.sqrt(ss / max(1, len(vals) - 1)), abs=1e-7)
            assert float(sp[j]) == pytest.approx(math.sqrt(ss / len(vals)), abs=1e-7)
            others = [v[k] for k in idx if k != j]
            assert float(loo[j]) == pytest.approx(math.fsum(others) / len(others) if others else 0.0, abs=1e-12)
        assert all(bool(group_all_equal(values, gids)[j]) == (max(vals) == min(vals)) for j in idx)
        if max(vals) == min(vals):  # all equal: exact
            assert all(float(m[j]) == vals[0] and float(sd[j]) == 0.0 for j in idx)


@given(data=grouped(min_size=2), dtype=st.sampled_from([torch.float32, F64]),
       value=st.floats(-100, 100, allow_nan=False, allow_subnormal=False))
def test_constant_groups_have_exact_mean_and_zero_std(data, dtype, value):
    _, gids = data
    x = torch.full(gids.shape, value, dtype=dtype)
    assert torch.equal(group_mean(x, gids), x)
    assert torch.equal(group_std(x, gids), torch.zeros_like(x))
    assert torch.equal(leave_one_out_mean(x, gids), x)


# ----------------------------------------------------------------------------- properties
@given(data=grouped(), seed=st.integers(0, 2**16))
def test_group_statistics_are_permutation_equivariant_and_ignore_id_labels(data, seed):
    values, gids = data
    order = torch.randperm(len(values), generator=torch.Generator().manual_seed(seed))
    relabelled = gids * 7 + 1000  # any injective relabelling
    for fn in (group_sum, group_mean, group_std, leave_one_out_mean):
        torch.testing.assert_close(fn(values[order], gids[order]), fn(values, gids)[order])
        torch.testing.assert_close(fn(values, relabelled), fn(values, gids))


@given(data=grouped(min_size=2))
def test_leave_one_out_identity(data):
    # loo_i = (n mean - v_i)/(n - 1), and mean_g(loo) = mean_g(v)
    values, gids = data
    n = group_count(gids).to(F64)
    loo = leave_one_out_mean(values, gids)
    torch.testing.assert_close(loo, (n * group_mean(values, gids) - values) / (n - 1))
    torch.testing.assert_close(group_mean(loo, gids), group_mean(values, gids))


@given(data=token_batches())
def test_returns_to_go_differences_are_the_rewards(data):
    # gamma = 1: G_t - G_{next valid t'} = r_t (G_t = r_t at the last valid token)
    values, mask = data
    g = returns_to_go(values, mask)
    for i in range(mask.shape[0]):
        valid = [t for t in range(mask.shape[1]) if mask[i, t]]
        for t, nxt in zip(valid, valid[1:] + [None], strict=False):
            later = 0.0 if nxt is None else float(g[i, nxt])
            assert float(g[i, t]) - later == pytest.approx(float(values[i, t]), abs=1e-9)


# ----------------------------------------------------------------------------- gradients
def _gc(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_gradchecks():
    torch.manual_seed(0)
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    _gc(lambda v: masked_sum(v, mask), x)
    _gc(lambda v: masked_sum(v, mask, dim=-1), x)
    _gc(lambda v: masked_mean(v, mask), x)
    _gc(lambda v: masked_var(v, mask), x)
    _gc(lambda v: masked_var(v, mask, unbiased=False), x)
    _gc(lambda v: sequence_mean(v, mask), x)
    _gc(lambda v: returns_to_go(v, mask), x)
    _gc(lambda v: returns_to_go(v, mask, gamma=0.8), x)
    s = torch.randn(6, dtype=F64, requires_grad=True)
    gids = torch.tensor([2, 0, 2, 0, 2, 5])
    _gc(lambda v: broadcast_to_tokens(v[:3], mask), s)
    for fn in (group_sum, group_mean, group_std, leave_one_out_mean):
        _gc(lambda v, fn=fn: fn(v, gids), s)
    _gc(lambda v: group_std(v, gids, unbiased=False), s)
    # an all-equal group and a singleton: the std's gradient is 0 there, never NaN
    flat = torch.tensor([0.5, 0.5, 1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(group_std(flat, torch.tensor([0, 0, 1, 1, 2])).sum(), flat)
    assert grad[:2].tolist() == [0.0, 0.0] and grad[4].item() == 0.0 and bool(torch.isfinite(grad).all())


@given(data=token_batches())
def test_padding_never_reaches_gradients(data):
    values, mask = data
    values = values.clone().requires_grad_(True)
    loss = masked_sum(values, mask) + masked_mean(values, mask) + masked_var(values, mask) \
        + sequence_mean(values, mask).sum() + returns_to_go(values, mask, 0.9).sum()
    (grad,) = torch.autograd.grad(loss, values, allow_unused=True)
    grad = torch.zeros_like(values) if grad is None else grad
    assert bool(torch.isfinite(grad).all())
    assert bool((grad[~mask] == 0).all())


def test_group_mean_gradient_is_exactly_one_over_n():
    # the max-shift used for exact constant-group means is detached: d mean_g / d v_j = 1/|g|
    v = torch.tensor([0.7, 0.7, 0.7, 2.0, 1.0], requires_grad=True)
    gids = torch.tensor([0, 0, 0, 1, 1])
    (grad,) = torch.autograd.grad(group_mean(v, gids)[0], v)
    torch.testing.assert_close(grad, torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0, 0.0]))


# ----------------------------------------------------------------------------- bad input (typechecks on)
def test_shape_and_dtype_mistakes_are_caught_by_the_typechecks():
    from jaxtyping import TypeCheckError

    assert os.environ["RLOBJ_TYPECHECK"] == "1"
    with pytest.raises(TypeCheckError):
        masked_sum(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeCheckError):
        masked_sum(torch.zeros(2, 3), torch.ones(2, 3))  # float mask
    with pytest.raises(TypeCheckError):
        group_mean(torch.zeros(3), torch.tensor([0.0, 1.0, 1.0]))  # float group ids
    with pytest.raises(TypeCheckError):
        group_mean(torch.zeros(3), torch.tensor([0, 1]))  # length mismatch
    with pytest.raises(TypeCheckError):
        returns_to_go(torch.zeros(3), torch.ones(3, dtype=torch.bool))  # not "batch seq"
