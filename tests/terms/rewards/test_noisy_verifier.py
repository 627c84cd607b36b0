"""The backward correction and the online false-negative rate of a noisy verifier
(rlobj/terms/rewards/noisy_verifier.py, Cai et al., arXiv 2510.00915): hand values, loop references on
Hypothesis inputs, exact unbiasedness under the noise channel, the z-score degeneracy and its
build-time refusal, recipes with either correction, bad input. The forward correction's own tests
are in tests/terms/advantages/test_noisy_verifier.py."""

import math

import pytest
import torch
from batches import leaf, make_batch, presets
from hypothesis import given
from hypothesis import strategies as st
from terms._noisy_states import BINARY, F64, rates, state_of

from rlobj import (
    Objective,
    clip_ratio,
    group_mean_baseline,
    group_zscore,
    grpo,
    leave_one_out,
    reinforce,
    seq_mean_token_sum,
)
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjBuildError, RlobjInputError
from rlobj.terms.advantages import batch_whiten, forward_correction, group_mean_batch_std
from rlobj.terms.rewards import backward_correction, check_noisy_chain, fn_rate_from_appeals


def corrected(rho0, rho1, value):
    return float(backward_correction(rho0, rho1)(state_of([value])).rewards[0])


# --------------------------------------------------------------------------- hand values
def test_backward_hand_values():
    # rho0 = 0.1, rho1 = 0.2: c = 0.7; R(1) = 0.9 / 0.7 = 9/7, R(0) = -0.1 / 0.7 = -1/7
    out = backward_correction(0.1, 0.2)(state_of([1.0, 0.0, 1.0]))
    torch.testing.assert_close(out.rewards, torch.tensor([9 / 7, -1 / 7, 9 / 7], dtype=F64))


def test_fn_rate_hand_values():
    # step 1: 2 flipped appeals at q = 0.1 -> FN = 20; 60 rule positives; rho = (20 + a) / (80 + a + b) ~ 0.25
    # step 2: 0 flipped, 30 positives -> rho_step = 1e-5 / (30 + 2e-5) ~ 3.3e-7; EMA 0.9 * 0.25 + 0.1 * 3.3e-7
    term = fn_rate_from_appeals()
    rewards = [1.0] * 60 + [0.0] * 40
    flipped = torch.tensor([False] * 60 + [True, True] + [False] * 38)
    out = Objective(term >> backward_correction(0.0, None) >> leave_one_out() >> reinforce())(
        logp=torch.full((100, 1), -0.5), mask=torch.ones(100, 1, dtype=torch.bool),
        rewards=torch.tensor(rewards), group_ids=torch.zeros(100, dtype=torch.long),
        extras={"appeal_flipped": flipped})
    first = (20 + 1e-5) / (80 + 2e-5)
    assert float(out.metrics["noisy/rho1_ema"]) == pytest.approx(first)
    assert float(out.metrics["noisy/backward_scale"]) == pytest.approx(1 - first, rel=1e-6)
    (stored,) = out.term_state.values()
    assert stored == pytest.approx(first)
    out2 = Objective(term >> backward_correction(0.0, None) >> leave_one_out() >> reinforce())(
        logp=torch.full((30, 1), -0.5), mask=torch.ones(30, 1, dtype=torch.bool), rewards=torch.ones(30),
        group_ids=torch.zeros(30, dtype=torch.long), extras={"appeal_flipped": torch.zeros(30, dtype=torch.bool)},
        term_state=out.term_state)
    step = 1e-5 / (30 + 2e-5)
    assert float(out2.metrics["noisy/rho1_ema"]) == pytest.approx(0.9 * first + 0.1 * step)


# --------------------------------------------------------------------------- loop references
@given(BINARY, rates())
def test_backward_matches_loop_reference(rewards, rho):
    rho0, rho1 = rho
    out = backward_correction(rho0, rho1)(state_of(rewards)).rewards
    expected = [(r - rho0) / max(1 - rho0 - rho1, 0.01) for r in rewards]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=F64))


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=5),
       st.sampled_from([0.05, 0.1, 0.5]), st.sampled_from([0.0, 0.5, 0.9]))
def test_fn_rate_matches_loop_reference(steps, q, ema):
    term = fn_rate_from_appeals(q=q, ema=ema)
    expected, term_state = None, None
    for flips, positives in steps:
        negatives = flips + 3
        rewards = torch.tensor([1.0] * positives + [0.0] * negatives)
        flipped = torch.tensor([False] * positives + [True] * flips + [False] * 3)
        n = len(rewards)
        state = State.from_batch(logp=torch.full((n, 1), -0.5), mask=torch.ones(n, 1, dtype=torch.bool),
                                 rewards=rewards, extras={"appeal_flipped": flipped}, term_state=term_state or {})
        out = term(state.update(key="0:fn"))
        fn = flips / q
        step = (fn + 1e-5) / (fn + positives + 2e-5)
        expected = step if expected is None else ema * expected + (1 - ema) * step
        expected = min(expected, 0.99)
        assert float(out.extras["noise_rho1"]) == pytest.approx(expected, rel=1e-5)
        term_state = out.term_state


# --------------------------------------------------------------------------- unbiasedness (exact)
@given(rates())
def test_backward_is_unbiased_under_the_channel(rho):
    rho0, rho1 = rho
    high, low = corrected(rho0, rho1, 1.0), corrected(rho0, rho1, 0.0)
    assert (1 - rho1) * high + rho1 * low == pytest.approx(1.0, abs=1e-9)   # E[R_hat | R* = 1]
    assert rho0 * high + (1 - rho0) * low == pytest.approx(0.0, abs=1e-9)   # E[R_hat | R* = 0]


@given(rates(), st.floats(0, 1))
def test_backward_variance_grows_as_inverse_square_of_the_gap(rho, p_clean):
    rho0, rho1 = rho
    c = 1 - rho0 - rho1
    p_obs = p_clean * (1 - rho1) + (1 - p_clean) * rho0
    high, low = corrected(rho0, rho1, 1.0), corrected(rho0, rho1, 0.0)
    mean = p_obs * high + (1 - p_obs) * low
    variance = p_obs * (high - mean) ** 2 + (1 - p_obs) * (low - mean) ** 2
    assert mean == pytest.approx(p_clean, abs=1e-9)
    assert variance == pytest.approx(p_obs * (1 - p_obs) / c**2, rel=1e-9, abs=1e-12)


def test_backward_monte_carlo():
    g = torch.Generator().manual_seed(0)
    clean = (torch.rand(200_000, generator=g) < 0.3).double()
    flip = torch.rand(200_000, generator=g)
    noisy = torch.where(clean == 1, (flip >= 0.2).double(), (flip < 0.1).double())
    out = backward_correction(0.1, 0.2)(State.from_batch(logp=torch.zeros(len(noisy), 1, dtype=F64),
                                                         mask=torch.ones(len(noisy), 1, dtype=torch.bool),
                                                         rewards=noisy))
    assert float(out.rewards.mean()) == pytest.approx(0.3, abs=0.01)


def test_zero_noise_is_the_identity_and_pure_negative_weighting():
    s = state_of([1.0, 0.0, 1.0])
    assert backward_correction(0.0, 0.0)(s).rewards.tolist() == [1.0, 0.0, 1.0]
    assert forward_correction(rho1=0.0)(s).advantages[:, 0].tolist() == [0.0, -1.0, 0.0]


# --------------------------------------------------------------------------- degeneracy and its refusal
@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=8), rates())
def test_zscore_undoes_the_backward_correction_and_loo_does_not(rewards, rho):
    rho0, rho1 = rho
    s = state_of(rewards)
    plain = group_zscore()(s).advantages
    through = group_zscore()(backward_correction(rho0, rho1, allow_standardize=True)(s)).advantages
    torch.testing.assert_close(through, plain, atol=1e-4, rtol=1e-4)
    loo_plain = leave_one_out()(s).advantages
    loo_corrected = leave_one_out()(backward_correction(rho0, rho1)(s)).advantages
    torch.testing.assert_close(loo_corrected, loo_plain / (1 - rho0 - rho1))
    if 0 < sum(rewards) < len(rewards) and rho0 + rho1 > 0.01:
        assert float((loo_corrected - loo_plain).abs().mean()) > 0


@pytest.mark.parametrize("standardizer", [group_zscore(), group_mean_batch_std(), batch_whiten()])
def test_check_noisy_chain_refuses_standardization_after_backward_correction(standardizer):
    # refused when the chain is built (the term's check_chain hook runs in check_order) ...
    with pytest.raises(RlobjBuildError, match=f"backward_correction is followed by {type(standardizer).__name__}"):
        backward_correction() >> standardizer >> clip_ratio()
    with pytest.raises(RlobjBuildError, match="leave_one_out"):
        backward_correction() >> grpo
    # ... and by the standalone checker on plain lists of terms
    with pytest.raises(RlobjBuildError, match="leave_one_out"):
        check_noisy_chain([backward_correction(), grpo])
    check_noisy_chain(backward_correction(allow_standardize=True) >> standardizer)
    check_noisy_chain(backward_correction() >> leave_one_out() >> clip_ratio())
    check_noisy_chain(standardizer >> clip_ratio())  # no correction: nothing to check
    check_noisy_chain(grpo.replace(group_zscore, forward_correction()))


# --------------------------------------------------------------------------- gradient through the surrogate
def test_gradient_through_reinforce_is_minus_advantage_over_count():
    s = state_of([1.0, 0.0, 0.0, 1.0], group_ids=[0, 0, 1, 1], width=1)
    logp = s.logp.clone().requires_grad_(True)
    out = Objective(forward_correction(rho1=0.25) >> reinforce() >> seq_mean_token_sum())(
        logp=logp, mask=s.mask, rewards=s.rewards, group_ids=s.group_ids)
    out.loss.backward()
    # A = 0.25 for r = 1, -0.75 for r = 0; dL/dlogp = -A / 4
    torch.testing.assert_close(logp.grad[:, 0], torch.tensor([-0.0625, 0.1875, 0.1875, -0.0625], dtype=F64))


# --------------------------------------------------------------------------- recipes
@presets()
def test_recipes_compose_with_presets(preset):
    advantage = group_zscore if any(isinstance(t, group_zscore) for t in preset.terms) else group_mean_baseline
    batch = make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=3)
    batch["extras"]["appeal_flipped"] = (batch["rewards"] == 0) & torch.tensor([True, False] * 4)
    recipes = [
        backward_correction() >> preset.replace(advantage, leave_one_out()),
        preset.replace(advantage, forward_correction()),
        fn_rate_from_appeals() >> backward_correction(rho0=0.0, rho1=None) >> preset.replace(advantage, leave_one_out()),
        fn_rate_from_appeals() >> preset.replace(advantage, forward_correction(rho1=None)),
    ]
    # (in dapo the correction comes before the overlong shaping, which keeps rewards binary
    #  here: every response is far below the length budget)
    for recipe in recipes:
        check_noisy_chain(recipe)
        fields = leaf(batch)
        out = Objective(recipe)(**fields)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        assert torch.isfinite(fields["logp"].grad).all()


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("build, match", [
    (lambda: backward_correction(0.6, 0.5), r"rho0 \+ rho1 < 1"),
    (lambda: backward_correction(-0.1, 0.2), r"backward_correction.rho0: expected >= 0.0, got -0.1"),
    (lambda: backward_correction(0.1, 0.2, eps_c=0.0), r"eps_c: expected > 0.0"),
    (lambda: fn_rate_from_appeals(q=0.0), r"q: expected > 0.0, got 0.0"),
    (lambda: fn_rate_from_appeals(max_rate=1.0), r"max_rate: expected < 1"),
])
def test_bad_hyperparameters(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


def test_bad_inputs():
    with pytest.raises(RlobjInputError, match=r"rewards: backward_correction corrects a binary verifier.*0.5"):
        backward_correction()(state_of([1.0, 0.5]))
    with pytest.raises(RlobjInputError, match=r"extras\['noise_rho1'\].*\[0, 1\), got 1.5"):
        backward_correction(rho1=None)(state_of([1.0], extras={"noise_rho1": torch.tensor(1.5)}))
    with pytest.raises(RlobjInputError, match=r"fn_rate_from_appeals reads 'extras:appeal_flipped'"):
        fn_rate_from_appeals()(state_of([1.0]))
    with pytest.raises(RlobjInputError, match=r"only rule negatives.*rows \[0\]"):
        fn_rate_from_appeals()(state_of([1.0, 0.0], extras={"appeal_flipped": torch.tensor([True, False])}))
    with pytest.raises(RlobjInputError, match=r"extras\['appeal_flipped'\]: expected shape"):
        fn_rate_from_appeals()(state_of([1.0, 0.0], extras={"appeal_flipped": torch.tensor([True])}))
    assert math.isfinite(corrected(0.0, 0.0, 1.0))
