"""The forward correction of a noisy verifier (rlobj/terms/advantages/noisy_verifier.py, PGFC, Cai et al.,
arXiv 2510.00915): hand values, the loop reference on Hypothesis inputs, the weights' conditional
expectations under the noise channel, the expected update's direction on a toy bandit (autograd),
bad input. The backward correction, the degeneracy refusal and the recipes with both corrections
are in tests/terms/rewards/test_noisy_verifier.py."""


import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from terms._noisy_states import BINARY, F64, rates, state_of, weight

from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import forward_correction


def test_forward_hand_values():
    # rho1 = 0.2: w(1) = 0.2, w(0) = -0.8; scales 1, 0.8, 0.7 (rho0 = 0.1)
    assert weight(0.2, 1.0) == pytest.approx(0.2) and weight(0.2, 0.0) == pytest.approx(-0.8)
    assert weight(0.2, 0.0, scale="one_minus_rho1") == pytest.approx(-1.0)
    assert weight(0.2, 1.0, scale="one_minus_rho0_rho1", rho0=0.1) == pytest.approx(0.2 / 0.7)


@given(BINARY, rates(), st.sampled_from(["one", "one_minus_rho1", "one_minus_rho0_rho1"]))
def test_forward_matches_loop_reference(rewards, rho, scale):
    rho0, rho1 = rho
    out = forward_correction(rho1=rho1, scale=scale, rho0=rho0)(state_of(rewards)).advantages
    s = {"one": 1.0, "one_minus_rho1": 1 - rho1, "one_minus_rho0_rho1": 1 - rho0 - rho1}[scale]
    expected = [[(r - (1 - rho1)) / s] * 2 for r in rewards]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=F64))


@given(rates())
def test_forward_weights_conditional_expectations_and_bounds(rho):
    rho0, rho1 = rho
    high, low = weight(rho1, 1.0), weight(rho1, 0.0)
    assert (1 - rho1) * high + rho1 * low == pytest.approx(0.0, abs=1e-9)
    assert rho0 * high + (1 - rho0) * low == pytest.approx(-(1 - rho0 - rho1), abs=1e-9)
    assert -1 <= low <= high <= 1


@given(rates(), st.lists(st.floats(-2, 2), min_size=2, max_size=5), st.data())
def test_forward_expected_update_is_aligned_with_the_clean_gradient(rho, logits, data):
    """Toy bandit: exact expectation over arms and the noise channel of A * grad log pi."""
    rho0, rho1 = rho
    arms = len(logits)
    clean = torch.tensor(data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=arms, max_size=arms)), dtype=F64)
    z = torch.tensor(logits, dtype=F64, requires_grad=True)
    probs = torch.softmax(z, -1)
    (clean_grad,) = torch.autograd.grad((probs * clean).sum(), z)  # grad J
    # one row per (arm, observed reward): advantages from the term, weights = P(arm) P(obs | clean)
    obs = torch.tensor([1.0, 0.0] * arms, dtype=F64)
    arm = torch.arange(arms).repeat_interleave(2)
    advantages = forward_correction(rho1=rho1)(state_of(obs.tolist(), width=1)).advantages[:, 0]
    p_one = torch.where(clean[arm] == 1, 1 - rho1, rho0)
    channel = torch.where(obs == 1, p_one, 1 - p_one)
    logp = torch.log_softmax(z, -1)[arm]
    expected_update = torch.autograd.grad((probs.detach()[arm] * channel * advantages * logp).sum(), z)[0]
    torch.testing.assert_close(expected_update, (1 - rho0 - rho1) * clean_grad)


@pytest.mark.parametrize("build, match", [
    (lambda: forward_correction(rho1=1.2), r"forward_correction.rho1: expected <= 1.0, got 1.2"),
    (lambda: forward_correction(scale="std"), r"scale: expected 'one'"),
])
def test_bad_hyperparameters(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


def test_bad_inputs():
    with pytest.raises(RlobjInputError, match=r"forward_correction reads 'extras:noise_rho1'"):
        forward_correction(rho1=None)(state_of([1.0]))
