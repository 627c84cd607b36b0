"""Schulman's k3 estimator (rlobj/ops/kl.py): hand values, a float64 reference on Hypothesis inputs,
never negative (also for tiny log-ratios in float32), its gradient, and its mean under p being
KL(p || q) exactly for discrete distributions."""

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from rlobj.ops.kl import k3_estimate


def test_hand_values():
    d = torch.tensor([0.0, 1.0, -1.0, math.log(2.0)], dtype=torch.float64)
    expected = [0.0, math.e - 2.0, math.exp(-1.0), 1.0 - math.log(2.0)]  # e^d - 1 - d
    torch.testing.assert_close(k3_estimate(d), torch.tensor(expected, dtype=torch.float64), rtol=1e-15, atol=0)


@given(st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=20))
def test_matches_the_formula_and_is_never_negative(values):
    d = torch.tensor(values, dtype=torch.float64)
    out = k3_estimate(d)
    reference = torch.tensor([math.expm1(x) - x for x in values], dtype=torch.float64)
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-300)
    assert bool((out >= 0).all())


def test_tiny_log_ratios_stay_positive_in_float32():
    d = torch.tensor([1e-4, -1e-4, 1e-6], dtype=torch.float32)
    naive = torch.exp(d) - 1 - d  # cancels to 0 or below in float32
    out = k3_estimate(d)
    assert bool((out > 0).all()) and bool((naive <= 0).any())
    # e^d - 1 - d = d^2/2 + O(d^3); expm1's own rounding (~6e-8 d) bounds the relative error
    torch.testing.assert_close(out[:2], (d * d / 2)[:2], rtol=5e-3, atol=0)


def test_gradient_is_e_to_the_d_minus_one():
    d = torch.tensor([-2.0, -0.3, 0.0, 0.7, 3.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(k3_estimate, (d,))
    (grad,) = torch.autograd.grad(k3_estimate(d).sum(), d)
    torch.testing.assert_close(grad, torch.expm1(d.detach()))


@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6), st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6))
def test_mean_under_p_is_the_kl_divergence(p_weights, q_weights):
    n = min(len(p_weights), len(q_weights))
    p = torch.tensor(p_weights[:n], dtype=torch.float64)
    q = torch.tensor(q_weights[:n], dtype=torch.float64)
    p, q = p / p.sum(), q / q.sum()
    expectation = (p * k3_estimate(q.log() - p.log())).sum()  # sum_x p(x) k3(log q(x)/p(x))
    kl = (p * (p.log() - q.log())).sum()
    torch.testing.assert_close(expectation, kl, rtol=1e-10, atol=1e-12)
