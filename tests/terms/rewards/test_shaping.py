"""Reward-shaping terms: hand values, loop references on Hypothesis inputs, gradients through
the rewards, properties (DAPO overlong penalty shape, length penalty bounds), bad input."""

import math

import pytest
import torch
from batches import assert_refused_without
from hypothesis import given
from hypothesis import strategies as st
from terms._reward_batches import F64, _state, batches, make_state

from rlobj.ops.errors import RlobjBuildError, RlobjInputError
from rlobj.terms.advantages import group_zscore
from rlobj.terms.rewards import clip_rewards, length_penalty, overlong_penalty


# ----------------------------------------------------------------------------- overlong_penalty
def ref_overlong(length, max_length, buffer, factor):
    expected = max_length - buffer
    if length <= expected:
        return 0.0
    if length <= max_length:
        return (expected - length) / buffer * factor
    return -factor


def test_hand_overlong_penalty():
    # L_max = 10, L_buf = 4 -> free up to 6; 7 -> (6-7)/4 = -0.25; 8 -> -0.5; 10 -> -1; 12 -> -1 (capped)
    state = _state([1.0] * 6, [5, 6, 7, 8, 10, 12])
    out = overlong_penalty(max_length=10, buffer=4)(state)
    assert out.rewards.tolist() == [1.0, 1.0, 0.75, 0.5, 0.0, 0.0]
    # factor 0.5 halves the penalty: 8 -> -0.25
    assert overlong_penalty(max_length=10, buffer=4, factor=0.5)(state).rewards.tolist() == [1, 1, 0.875, 0.75, 0.5, 0.5]
    assert float(out.metrics["reward/overlong_penalty"]) == pytest.approx(-(0.25 + 0.5 + 1 + 1) / 6)
    # DAPO reference defaults: 20480 with a 4096 buffer, factor 1
    default = overlong_penalty()
    assert (default.max_length, default.buffer, default.factor) == (20480, 4096, 1.0)
    assert default.penalty(torch.tensor([16384.0, 18432.0, 20480.0])).tolist() == [0.0, -0.5, -1.0]


@given(b=batches(), max_length=st.integers(1, 12), data=st.data(), factor=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_overlong_penalty_matches_loop(b, max_length, data, factor):
    buffer = data.draw(st.integers(1, max_length))
    out = overlong_penalty(max_length=max_length, buffer=buffer, factor=factor)(make_state(b))
    want = [r + ref_overlong(n, max_length, buffer, factor) for r, n in zip(b["rewards"], b["lengths"], strict=True)]
    assert out.rewards.tolist() == pytest.approx(want, abs=1e-12)


@given(max_length=st.integers(2, 50_000), data=st.data(), factor=st.floats(0, 5, allow_subnormal=False))
def test_overlong_penalty_shape(max_length, data, factor):
    """In [-factor, 0]; 0 up to L_max - L_buf; continuous; linear on each piece; non-increasing."""
    buffer = data.draw(st.integers(1, max_length))
    term = overlong_penalty(max_length=max_length, buffer=buffer, factor=factor)
    start = max_length - buffer
    lengths = torch.tensor(sorted({0, max(0, start - 1), start, start + 1, (start + max_length) // 2,
                                   max_length - 1, max_length, max_length + 1, 3 * max_length}), dtype=F64)
    p = term.penalty(lengths)
    assert bool(((p >= -factor - 1e-12) & (p <= 0)).all())
    assert bool((p[lengths <= start] == 0).all())
    torch.testing.assert_close(p[lengths >= max_length], torch.full_like(p[lengths >= max_length], -factor))
    assert bool((p[1:] <= p[:-1] + 1e-12).all())
    # continuity at the knots and linearity in between (slope -factor/buffer)
    for knot in (start, max_length):
        k = torch.tensor([knot - 1e-6, knot, knot + 1e-6], dtype=F64)
        v = term.penalty(k)
        assert float((v - v[1]).abs().max()) <= 2e-6 * factor / buffer + 1e-12
    inside = torch.linspace(start, max_length, 7, dtype=F64)
    slopes = term.penalty(inside).diff() / inside.diff()
    torch.testing.assert_close(slopes, torch.full_like(slopes, -factor / buffer))


def test_overlong_penalty_gradient_passes_through_rewards():
    state = _state([0.5, -0.25, 2.0], [3, 9, 15], requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda r: overlong_penalty(max_length=10, buffer=4)(state.update(rewards=r)).rewards,
        (state.rewards,))


# ----------------------------------------------------------------------------- length_penalty
def ref_length_penalty(b, coef):
    out = list(b["rewards"])
    for g in set(b["group_ids"]):
        idx = [i for i, x in enumerate(b["group_ids"]) if x == g]
        lens = [b["lengths"][i] for i in idx]
        lo, hi = min(lens), max(lens)
        for i in idx:
            lam = 0.0 if hi == lo else 0.5 - (b["lengths"][i] - lo) / (hi - lo)
            out[i] += coef * (lam if b["rewards"][i] > 0 else min(0.0, lam))
    return out


def test_hand_length_penalty():
    # lengths (2, 4, 6): lambda = 0.5 - (l - 2)/4 = (0.5, 0, -0.5)
    # correct r = 1 -> +lambda: 1.5, 1.0; incorrect r = 0 at length 6 -> + min(0, -0.5) = -0.5
    state = _state([1.0, 1.0, 0.0], [2, 4, 6])
    assert length_penalty()(state).rewards.tolist() == [1.5, 1.0, -0.5]
    # an incorrect short answer is not rewarded: min(0, 0.5) = 0
    assert length_penalty(coef=0.1)(_state([0.0, 1.0], [2, 6])).rewards.tolist() == pytest.approx([0.0, 0.95])
    # equal lengths -> lambda = 0 -> unchanged
    assert length_penalty()(_state([1.0, 0.0], [3, 3])).rewards.tolist() == [1.0, 0.0]


@given(b=batches(), coef=st.sampled_from([0.0, 0.1, 1.0, 2.5]))
def test_length_penalty_matches_loop_and_bounds(b, coef):
    out = length_penalty(coef=coef)(make_state(b)).rewards
    assert out.tolist() == pytest.approx(ref_length_penalty(b, coef), abs=1e-12)
    bonus = out - torch.tensor(b["rewards"], dtype=F64)
    assert bool((bonus.abs() <= 0.5 * coef + 1e-12).all())
    wrong = torch.tensor(b["rewards"], dtype=F64) <= 0
    assert bool((bonus[wrong] <= 1e-12).all())  # incorrect answers are never raised


def test_length_penalty_gradient_passes_through_rewards():
    state = _state([1.0, 0.5, -1.0], [2, 5, 7], requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: length_penalty()(state.update(rewards=r)).rewards, (state.rewards,))


# ----------------------------------------------------------------------------- clip_rewards
def test_hand_clip_rewards():
    out = clip_rewards(low=-1.0, high=2.0)(_state([-3.0, 0.5, 2.0, 7.0], [1, 1, 1, 1]))
    assert out.rewards.tolist() == [-1.0, 0.5, 2.0, 2.0]
    assert float(out.metrics["reward/clipped_frac"]) == 0.5  # -3 and 7 changed
    assert (clip_rewards().low, clip_rewards().high) == (-10.0, 10.0)  # OpenRLHF reward_clip_range


@given(b=batches(), low=st.floats(-10, 0), width=st.floats(0, 10))
def test_clip_rewards_matches_loop(b, low, width):
    high = low + width
    out = clip_rewards(low=low, high=high)(make_state(b)).rewards
    assert out.tolist() == [min(max(r, low), high) for r in b["rewards"]]


def test_clip_rewards_gradient():
    state = _state([-3.0, 0.5, 1.5, 7.0], [1, 1, 1, 1], requires_grad=True)
    (grad,) = torch.autograd.grad(clip_rewards(low=-1.0, high=2.0)(state).rewards.sum(), state.rewards)
    assert grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    inside = _state([0.5, 1.5], [1, 1], requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: clip_rewards(low=-1.0, high=2.0)(inside.update(rewards=r)).rewards,
                                    (inside.rewards,))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("term", [overlong_penalty(max_length=10, buffer=4), length_penalty(), clip_rewards()],
                         ids=lambda t: type(t).__name__)
def test_missing_rewards(term):
    assert_refused_without(term, "reads 'rewards'", width=2, group_ids=torch.tensor([0, 0]))


@pytest.mark.parametrize("term", [length_penalty()], ids=lambda t: type(t).__name__)
def test_missing_group_ids(term):
    assert_refused_without(term, "group_ids", width=2, rewards=torch.tensor([1.0, 0.0]))


def test_nan_rewards_are_refused_by_the_state():
    with pytest.raises(RlobjInputError, match="rewards: expected finite values"):
        _state([float("nan"), 1.0], [1, 1])


@pytest.mark.parametrize("build, match", [
    (lambda: overlong_penalty(max_length=10, buffer=0), r"overlong_penalty\.buffer"),
    (lambda: overlong_penalty(max_length=10, buffer=11), "buffer 11 must be <= max_length 10"),
    (lambda: overlong_penalty(max_length=10, buffer=4, factor=-1.0), r"overlong_penalty\.factor"),
    (lambda: clip_rewards(low=1.0, high=0.0), "low 1.0 must be <= high 0.0"),
])
def test_bad_hyperparameters(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


def test_reward_shaping_must_come_before_advantages():
    with pytest.raises(RlobjBuildError):
        group_zscore() >> overlong_penalty(max_length=10, buffer=4)
    chain = overlong_penalty(max_length=10, buffer=4) >> group_zscore()
    # the penalty reaches the advantages: same correctness, the longer answer gets less
    state = _state([1.0, 1.0, 0.0], [5, 9, 5])
    out = chain(state) if callable(chain) else None
    adv = out.advantages[:, 0]
    assert float(adv[0]) > float(adv[1]) > float(adv[2])
    assert math.isfinite(float(adv.sum()))
