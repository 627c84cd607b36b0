"""PSR / NSR / W-REINFORCE (rlobj/terms/advantages/sample_polarity.py): hand values, a plain-loop
reference on Hypothesis inputs, gradients (analytic through the PPO clip, and the logit-gradient
signs of the paper's Eq. 7-8 on a single softmax step), properties from the math, recipes, bad
input."""



import pytest
import torch
from batches import assert_trains, presets, replace_advantage
from hypothesis import given
from hypothesis import strategies as st

from rlobj import Objective, clip_ratio, seq_mean_token_mean
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import nsr, psr, w_reinforce
from rlobj.terms.surrogates import reinforce

F64 = torch.float64


def state_of(rewards, lengths, width=None, token_rewards=None):
    width = width or max(lengths)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    fields = dict(logp=torch.full(mask.shape, -0.5, dtype=F64), mask=mask,
                  rewards=torch.tensor(rewards, dtype=F64), group_ids=torch.zeros(len(rewards), dtype=torch.long))
    if token_rewards is not None:
        fields["token_rewards"] = torch.tensor(token_rewards, dtype=F64)
    return State.from_batch(**fields)


@st.composite
def inputs(draw):
    batch = draw(st.integers(1, 6))
    width = draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(0, width), min_size=batch, max_size=batch))
    values = st.one_of(st.sampled_from([0.0, 1.0, 0.5, -1.0]), st.floats(-2, 2, allow_nan=False))
    rewards = draw(st.lists(values, min_size=batch, max_size=batch))
    return rewards, lengths, width


def loop_reference(rewards, lengths, width, kind, lam=0.1, threshold=0.5, drop=True):
    """Per token advantages and kept mask, written from the formulas with plain loops."""
    adv, mask = [], []
    for r, n in zip(rewards, lengths):
        correct = r > threshold
        if kind == "psr":
            a, keep = (1.0 if correct else 0.0), (correct or not drop)
        elif kind == "nsr":
            a, keep = (-1.0 if not correct else 0.0), ((not correct) or not drop)
        else:
            a, keep = (lam if correct else -1.0), True
        adv.append([a if (t < n and keep) else 0.0 for t in range(width)])
        mask.append([t < n and keep for t in range(width)])
    return torch.tensor(adv, dtype=F64), torch.tensor(mask)


# --------------------------------------------------------------------------- hand values
def test_hand_values():
    # rewards 1, 0, 0.7, 0 (lengths 2, 1, 3, 2); correct iff r > 0.5 -> rows 0 and 2
    s = state_of([1.0, 0.0, 0.7, 0.0], [2, 1, 3, 2])
    out = psr(threshold=0.5)(s)
    assert out.advantages.tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert out.mask.any(-1).tolist() == [True, False, True, False]
    assert out.extras["dropped"].tolist() == [False, True, False, True]
    out = nsr(threshold=0.5)(s)
    assert out.advantages.tolist() == [[0, 0, 0], [-1, 0, 0], [0, 0, 0], [-1, -1, 0]]
    assert out.mask.any(-1).tolist() == [False, True, False, True]
    out = w_reinforce(lam=0.1, threshold=0.5)(s)
    assert torch.allclose(out.advantages, torch.tensor(
        [[0.1, 0.1, 0], [-1, 0, 0], [0.1, 0.1, 0.1], [-1, -1, 0]], dtype=F64))
    assert out.mask.tolist() == s.mask.tolist()
    # token rewards are part of r_i: 0 + 0.25 + 0.5 = 0.75 > 0.5 -> correct
    s = state_of([0.0], [2], token_rewards=[[0.25, 0.5]])
    assert w_reinforce(lam=0.3, threshold=0.5)(s).advantages.tolist() == [[0.3, 0.3]]


def test_loss_hand_value_through_the_clip():
    # on-policy (ratio 1), seq_mean_token_mean: PSR keeps rows 0 and 2 -> loss = -(1 + 1)/2 = -1;
    # W-REINFORCE (lam 0.1) over all four rows: (-0.1 + 1 - 0.1 + 1)/4 = 0.45
    s = state_of([1.0, 0.0, 0.7, 0.0], [2, 1, 3, 2])
    fields = dict(logp=s.logp, logp_old=s.logp, mask=s.mask, rewards=s.rewards)
    assert float(Objective(psr(threshold=0.5) >> clip_ratio() >> seq_mean_token_mean())(**fields).loss) == pytest.approx(-1.0)
    assert float(Objective(w_reinforce(threshold=0.5) >> clip_ratio() >> seq_mean_token_mean())(**fields).loss) == pytest.approx(0.45)


# --------------------------------------------------------------------------- loop reference
@given(inputs(), st.sampled_from(["psr", "nsr", "w"]), st.floats(0, 3), st.sampled_from([0.5, 0.0]),
       st.booleans())
def test_matches_loop_reference(data, kind, lam, threshold, drop):
    rewards, lengths, width = data
    s = state_of(rewards, lengths, width)
    term = {"psr": psr(threshold, drop), "nsr": nsr(threshold, drop), "w": w_reinforce(lam, threshold)}[kind]
    out = term(s)
    adv, mask = loop_reference(rewards, lengths, width, kind, lam, threshold, drop)
    torch.testing.assert_close(out.advantages, adv)
    assert out.mask.tolist() == mask.tolist()


# --------------------------------------------------------------------------- properties
@given(inputs())
def test_signs_partition_and_weighted_sum(data):
    rewards, lengths, width = data
    s = state_of(rewards, lengths, width)
    a_psr, a_nsr = psr(threshold=0.5)(s), nsr(threshold=0.5)(s)
    assert bool((a_psr.advantages >= 0).all()) and bool((a_nsr.advantages <= 0).all())
    kept_p, kept_n = a_psr.extras["dropped"].logical_not(), a_nsr.extras["dropped"].logical_not()
    assert bool((kept_p ^ kept_n).all())  # every row is in exactly one of the two
    for lam in (0.0, 0.1, 1.0, 2.5):
        combined = lam * psr(threshold=0.5, drop=False)(s).advantages + nsr(threshold=0.5, drop=False)(s).advantages
        torch.testing.assert_close(w_reinforce(lam, threshold=0.5)(s).advantages, combined)


@given(inputs())
def test_lambda_one_is_reinforce_with_pm1_rewards(data):
    rewards, lengths, width = data
    binary = [1.0 if r > 0.5 else 0.0 for r in rewards]
    s = state_of(binary, lengths, width)
    expected = torch.where(s.mask, (2 * s.rewards - 1)[:, None].expand_as(s.mask), torch.zeros((), dtype=F64))
    torch.testing.assert_close(w_reinforce(lam=1.0)(s).advantages, expected)


def test_not_zero_sum_and_not_recentred():
    # a group with three correct, one wrong: W-REINFORCE sums to 3*0.1 - 1 = -0.7, not 0
    s = state_of([1.0, 1.0, 1.0, 0.0], [1, 1, 1, 1])
    assert float(w_reinforce()(s).advantages.sum()) == pytest.approx(-0.7)
    # an all-correct group still gets signal (group z-scoring would give 0)
    s = state_of([1.0, 1.0], [1, 1])
    assert w_reinforce()(s).advantages.tolist() == [[0.1], [0.1]]


def _logit_step(kind, logits, token):
    """-dL/dz for one softmax step, loss = clip surrogate at theta = theta_old with PSR/NSR."""
    z = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(z, -1)[token].reshape(1, 1)
    reward = torch.tensor([1.0 if kind == "psr" else 0.0], dtype=F64)
    term = psr() if kind == "psr" else nsr()
    loss = Objective(term >> clip_ratio() >> seq_mean_token_mean())(
        logp=logp, logp_old=logp.detach(), mask=torch.ones(1, 1, dtype=torch.bool), rewards=reward).loss
    (grad,) = torch.autograd.grad(loss, z)
    return -grad


@given(st.lists(st.floats(-3, 3), min_size=2, max_size=6), st.data())
def test_logit_gradient_signs_eq7_eq8(logits, data):
    logits = torch.tensor(logits, dtype=F64)
    token = data.draw(st.integers(0, len(logits) - 1))
    probs = torch.softmax(logits, -1)
    others = torch.arange(len(logits)) != token
    for kind, sign in (("psr", 1.0), ("nsr", -1.0)):
        step = _logit_step(kind, logits, token)
        # Eq. 7-8 (log-prob form): +-(1 - pi_y) on y, -+pi_v on v != y
        torch.testing.assert_close(step[token], sign * (1 - probs[token]))
        torch.testing.assert_close(step[others], -sign * probs[others])
        # NSR raises every other logit in proportion to its prior probability
        if kind == "nsr":
            ratio = step[others] / probs[others]
            torch.testing.assert_close(ratio, torch.ones_like(ratio))


def test_nsr_update_on_sampled_logit_vanishes_as_its_probability_goes_to_one():
    sizes = []
    for gap in (0.0, 2.0, 5.0, 10.0, 20.0):
        logits = torch.tensor([gap, 0.0, 0.0], dtype=F64)
        sizes.append(abs(float(_logit_step("nsr", logits, 0)[0])))
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < 1e-8


def test_gradient_analytic_through_reinforce():
    # loss = mean_i (1/|y_i|) sum_t -A_i logp -> dL/dlogp_{i,t} = -A_i / (|y_i| N_seq) on kept tokens
    s = state_of([1.0, 0.0, 0.7, 0.0], [2, 1, 3, 2])
    logp = s.logp.clone().requires_grad_(True)
    out = Objective(w_reinforce(lam=0.1, threshold=0.5) >> reinforce() >> seq_mean_token_mean())(
        logp=logp, mask=s.mask, rewards=s.rewards)
    out.loss.backward()
    lengths = s.mask.sum(-1, keepdim=True).to(F64)
    expected = torch.where(s.mask, -out.state.advantages / (lengths * 4), torch.zeros((), dtype=F64))
    torch.testing.assert_close(logp.grad, expected)
    assert torch.autograd.gradcheck(
        lambda lp: Objective(psr(threshold=0.5) >> reinforce() >> seq_mean_token_mean())(
            logp=lp, mask=s.mask, rewards=s.rewards).loss, (s.logp.clone().requires_grad_(True),))


# --------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("term", [psr(), nsr(), w_reinforce(), psr(drop=False)])
@presets()
def test_composes_with_presets(term, preset):
    assert_trains(replace_advantage(preset, term))


def test_psr_on_an_all_wrong_batch_gives_zero_loss_not_an_error():
    s = state_of([0.0, 0.0], [2, 1])
    out = Objective(psr() >> clip_ratio() >> seq_mean_token_mean())(
        logp=s.logp, logp_old=s.logp, mask=s.mask, rewards=s.rewards)
    assert float(out.loss) == 0.0


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"w_reinforce.lam: expected >= 0.0, got -0.1"):
        w_reinforce(lam=-0.1)
    s = State.from_batch(logp=torch.zeros(2, 1), mask=torch.ones(2, 1, dtype=torch.bool))
    for term in (psr(), nsr(), w_reinforce()):
        with pytest.raises(RlobjInputError, match=f"{type(term).__name__} reads 'rewards'"):
            term(s)
