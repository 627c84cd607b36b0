"""LaSeR's self-reward loss and score (rlobj/terms/auxiliary.py): hand values, plain-loop references
on Hypothesis inputs, gradients (analytic + gradcheck), properties from the math (affine score,
non-negative loss, balanced weights, truncated rows), recipes with the loss alone and with the
advantage mixer, bad input. The mixer's own tests are in tests/terms/advantages/test_self_reward.py;
PACS is tested in tests/terms/surrogates/test_pacs.py.
"""

import pytest
import torch
from batches import leaf, make_batch, presets
from hypothesis import given
from hypothesis import strategies as st
from terms._self_reward_fields import F64, fields_of

from rlobj import (
    Objective,
    group_mean_baseline,
    group_zscore,
    seq_mean_token_mean,
    token_mean,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import self_reward_advantage
from rlobj.terms.auxiliary import self_reward_mse, self_reward_score


def mse_loss(term, **fields):
    return Objective(term >> token_mean())(**fields).loss


@st.composite
def inputs(draw):
    n = draw(st.integers(1, 7))
    rewards = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    probe = draw(st.lists(st.floats(-40, 0), min_size=n, max_size=n))
    truncated = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    return rewards, probe, truncated, lengths


def loop_mse(rewards, probe, truncated, coef=0.1, beta_v=0.1, c=-23.0, temperature=1.0, balanced=True):
    finished = [not t for t in truncated]
    n_f = sum(finished)
    n_c = sum(1 for r, f in zip(rewards, finished) if f and r > 0.5)
    n_w = n_f - n_c
    total = 0.0
    for r, p, f in zip(rewards, probe, finished):
        if not f:
            continue
        w = 1.0
        if balanced:
            w = n_f / (2 * n_c) if r > 0.5 else n_f / (2 * n_w)
        total += coef * w * (beta_v * (temperature * p - c) - r) ** 2
    return total / len(rewards)


# --------------------------------------------------------------------------- hand values
def test_score_hand_values():
    probe = torch.tensor([-13.0, -23.0, -18.0], dtype=F64)
    torch.testing.assert_close(self_reward_score(probe), torch.tensor([1.0, 0.0, 0.5], dtype=F64))
    torch.testing.assert_close(self_reward_score(probe, temperature=0.5), torch.tensor([1.65, 1.15, 1.4], dtype=F64))


def test_mse_hand_values():
    # r = [1, 0, 1], probe -> r_s = [1, 0.5, 0]; errors^2 = [0, 0.25, 1];
    # balanced: N = 3, N+ = 2, N- = 1 -> w = [3/4, 3/2, 3/4]; weighted [0, 0.375, 0.75];
    # mean over rows 1.125 / 3 = 0.375; x coef 0.1 = 0.0375
    loss = mse_loss(self_reward_mse(), **fields_of([1.0, 0.0, 1.0], [-13.0, -18.0, -23.0], lengths=[1, 3, 2]))
    assert float(loss) == pytest.approx(0.0375)
    assert float(mse_loss(self_reward_mse(balanced=False), **fields_of([1.0, 0.0, 1.0], [-13.0, -18.0, -23.0]))) \
        == pytest.approx(0.1 * 1.25 / 3)
    # the truncated third row counts in N (mean over rows) but contributes nothing:
    # N_f = 2, N+ = 1, N- = 1 -> w = 1; (0 + 0.25) / 3 * 0.1
    loss = mse_loss(self_reward_mse(), **fields_of([1.0, 0.0, 1.0], [-13.0, -18.0, -23.0], truncated=[False, False, True]))
    assert float(loss) == pytest.approx(0.1 * 0.25 / 3)


# --------------------------------------------------------------------------- loop references
@given(inputs(), st.booleans(), st.sampled_from([0.1, 1.0]), st.sampled_from([1.0, 0.7]))
def test_mse_matches_loop_reference(data, balanced, coef, temperature):
    rewards, probe, truncated, lengths = data
    term = self_reward_mse(coef=coef, balanced=balanced, temperature=temperature)
    for aggregation in (token_mean(), seq_mean_token_mean()):
        loss = Objective(term >> aggregation)(**fields_of(rewards, probe, truncated, lengths)).loss
        assert float(loss) == pytest.approx(loop_mse(rewards, probe, truncated, coef, 0.1, -23.0, temperature, balanced),
                                            rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- gradients and properties
@given(inputs())
def test_mse_gradient_analytic_and_sign(data):
    rewards, probe, truncated, lengths = data
    leaf_probe = torch.tensor(probe, dtype=F64, requires_grad=True)
    term = self_reward_mse()
    loss = mse_loss(term, **fields_of(rewards, leaf_probe, truncated, lengths))
    (grad,) = torch.autograd.grad(loss, leaf_probe)
    r = torch.tensor(rewards, dtype=F64)
    finished = ~torch.tensor(truncated)
    score = self_reward_score(leaf_probe.detach())
    weights = term.weights(r, finished)
    expected = 0.1 * weights * 2 * (score - r) * 0.1 / len(rewards)
    torch.testing.assert_close(grad, expected)
    # gradient descent moves log pi(z_c) toward the target: up for under-scored correct answers
    moving = weights > 0
    assert bool((torch.sign(-grad[moving]) == torch.sign(r - score)[moving]).all())
    assert float(loss.detach()) >= 0


def test_mse_gradcheck_and_zero_iff_calibrated():
    probe = torch.tensor([-13.0, -21.0, -17.0], dtype=F64, requires_grad=True)
    fields = fields_of([1.0, 0.0, 1.0], probe, truncated=[False, False, True])
    assert torch.autograd.gradcheck(lambda p: mse_loss(self_reward_mse(), **{**fields, "extras": {
        **fields["extras"], "self_reward_logp": p}}), (probe,))
    calibrated = fields_of([1.0, 0.0, 1.0], [-13.0, -23.0, -5.0], truncated=[False, False, True])
    assert float(mse_loss(self_reward_mse(), **calibrated)) == 0.0


@given(st.floats(-40, 0), st.floats(-40, 0), st.sampled_from([0.1, 0.5]), st.sampled_from([1.0, 0.6]))
def test_score_is_affine_with_slope_beta_t(p1, p2, beta_v, temperature):
    a, b = self_reward_score(torch.tensor([p1, p2], dtype=F64), beta_v, -23.0, temperature)
    assert float(a - b) == pytest.approx(beta_v * temperature * (p1 - p2), abs=1e-9)


@given(inputs())
def test_balanced_weights_sum_to_finished_count_and_truncated_rows_do_not_matter(data):
    rewards, probe, truncated, lengths = data
    r, finished = torch.tensor(rewards, dtype=F64), ~torch.tensor(truncated)
    weights = self_reward_mse().weights(r, finished)
    assert bool((weights[~finished] == 0).all())
    if bool((finished & (r > 0.5)).any()) and bool((finished & (r <= 0.5)).any()):
        assert float(weights.sum()) == pytest.approx(float(finished.sum()))
    other = [p if not t else -1.0 for p, t in zip(probe, truncated)]
    a = mse_loss(self_reward_mse(), **fields_of(rewards, probe, truncated, lengths))
    b = mse_loss(self_reward_mse(), **fields_of(rewards, other, truncated, lengths))
    assert float(a) == float(b)


# --------------------------------------------------------------------------- recipes
@presets()
def test_composes_with_presets(preset):
    batch = make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=3)
    probe = torch.log_softmax(torch.randn(8, 5, generator=torch.Generator().manual_seed(0)), -1)[:, 0]
    advantage = group_zscore if any(isinstance(t, group_zscore) for t in preset.terms) else group_mean_baseline
    for recipe in (preset >> self_reward_mse(), preset.replace(advantage, self_reward_advantage()) >> self_reward_mse()):
        fields = leaf(batch)
        fields["extras"] = {**batch["extras"], "self_reward_logp": probe.clone().requires_grad_(True)}
        out = Objective(recipe)(**fields)
        assert torch.isfinite(out.loss) and "loss/self_reward" in out.metrics
        out.loss.backward()
        assert torch.isfinite(fields["logp"].grad).all()
        assert fields["extras"]["self_reward_logp"].grad is not None


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"self_reward_mse.coef: expected >= 0.0, got -1"):
        self_reward_mse(coef=-1)
    with pytest.raises(RlobjInputError, match=r"beta_v: expected > 0.0"):
        self_reward_mse(beta_v=0.0)
    fields = fields_of([1.0, 0.0], [-13.0, -20.0])
    no_probe = {**fields, "extras": {}}
    with pytest.raises(RlobjInputError, match=r"self_reward_mse reads 'extras:self_reward_logp'"):
        mse_loss(self_reward_mse(), **no_probe)
    with pytest.raises(RlobjInputError, match=r"extras\['self_reward_logp'\]: expected shape \(batch\) = \(2,\), got \(3,\)"):
        mse_loss(self_reward_mse(), **fields_of([1.0, 0.0], torch.zeros(3, dtype=F64)))
    with pytest.raises(RlobjInputError, match=r"must be <= 0"):
        mse_loss(self_reward_mse(), **fields_of([1.0, 0.0], [0.5, -1.0]))
    with pytest.raises(RlobjInputError, match=r"expected finite values"):
        mse_loss(self_reward_mse(), **fields_of([1.0, 0.0], [float("nan"), -1.0]))

