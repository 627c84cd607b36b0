"""Self-Aligned Reward and RLPR (rlobj/terms/rewards/likelihood.py): hand values with the arithmetic
in comments, loop references on Hypothesis inputs, monotone and bounded as their papers say,
on-policy log-probs detached, composition before the presets, bad input."""

import math

import pytest
import torch
from batches import assert_trains, presets
from hypothesis import given
from hypothesis import strategies as st
from terms.rewards._helpers import F64, state_of

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.rewards import (
    answer_probability,
    rlpr_reward,
    self_aligned_reward,
    self_aligned_score,
)


# =========================================================================== Self-Aligned Reward
def sar_state(rewards, given, alone, lengths=None):
    width = len(given[0])
    return state_of(rewards, lengths=lengths, width=width, logp_old=torch.tensor(given, dtype=F64),
                    extras={"logp_unconditioned": torch.tensor(alone, dtype=F64)})


def test_sar_hand_values():
    # row 0: mean logp with q = -1, without = -2: R_SA = 1 - e^(-2 - (-1)) = 1 - e^-1 = .632121;
    #        r = 1 + .2 * .632121 = 1.126424
    # row 1: with q = -2, without = -1: 1 - e^(1) = -1.718 -> clipped to -1: r = 0 - .2 = -.2
    # row 2: identical log-probs -> R_SA = 0: r = .5 (length 1: only t = 0 counts)
    s = sar_state([1.0, 0.0, 0.5], [[-1.0, -1.0], [-2.0, -2.0], [-0.3, -9.0]],
                  [[-2.0, -2.0], [-1.0, -1.0], [-0.3, -0.1]], lengths=[2, 2, 1])
    out = self_aligned_reward()(s)
    torch.testing.assert_close(out.rewards, torch.tensor([1 + 0.2 * (1 - math.exp(-1)), -0.2, 0.5], dtype=F64))
    # use_log: cross-entropies H_a = 2, H_a|q = 1: (2 - 1) / 2 = .5; row 1: (1 - 2) / 1 = -1
    torch.testing.assert_close(self_aligned_reward(alpha=1.0, use_log=True)(s).rewards,
                               torch.tensor([1.5, -1.0, 0.5], dtype=F64))
    # alpha = 0 reproduces the base reward exactly
    assert self_aligned_reward(alpha=0.0)(s).rewards.tolist() == [1.0, 0.0, 0.5]


@st.composite
def sar_inputs(draw):
    n, width = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(0, width), min_size=n, max_size=n))
    logps = st.lists(st.lists(st.floats(-6, 0), min_size=width, max_size=width), min_size=n, max_size=n)
    return draw(logps), draw(logps), lengths, width


@given(sar_inputs(), st.floats(0, 1), st.booleans())
def test_sar_matches_loop_reference(data, alpha, use_log):
    given_q, alone, lengths, width = data
    s = sar_state([0.0] * len(lengths), given_q, alone, lengths)
    out = self_aligned_reward(alpha, use_log)(s)
    for i, n in enumerate(lengths):
        if n == 0:
            expected = 0.0
        else:
            mean_q = sum(given_q[i][:n]) / n
            mean_a = sum(alone[i][:n]) / n
            if use_log:
                expected = max(-1.0, min(1.0, (mean_q - mean_a) / max(-mean_a, 1e-8)))
            else:
                ppl_q, ppl_a = math.exp(-mean_q), math.exp(-mean_a)
                expected = max(-1.0, min(1.0, (ppl_a - ppl_q) / ppl_a))
        assert float(out.rewards[i]) == pytest.approx(alpha * expected, abs=1e-9)


@given(st.floats(-5, 0), st.floats(-5, 0), st.floats(0.01, 1))
def test_sar_properties(mean_q, mean_a, step):
    score = lambda q, a: float(self_aligned_score(torch.tensor([q], dtype=F64), torch.tensor([a], dtype=F64)))  # noqa: E731
    value = score(mean_q, mean_a)
    assert -1.0 <= value < 1.0
    assert (value > 0) == (mean_q > mean_a)
    assert score(mean_q + step, mean_a) >= value  # increasing in the conditioned mean log-prob
    assert score(mean_q, mean_a - step) >= value  # decreasing in the unconditioned one
    # depends only on the means: repeating a row's tokens changes nothing
    once = sar_state([0.0], [[mean_q, mean_q - 1]], [[mean_a, mean_a - 1]])
    twice = sar_state([0.0], [[mean_q, mean_q - 1] * 2], [[mean_a, mean_a - 1] * 2])
    torch.testing.assert_close(self_aligned_reward()(once).rewards, self_aligned_reward()(twice).rewards)


def test_sar_uses_logp_when_on_policy_and_is_detached():
    logp = torch.tensor([[-1.0, -1.0]], dtype=F64, requires_grad=True)
    s = State.from_batch(logp=logp, mask=torch.ones(1, 2, dtype=torch.bool), rewards=torch.tensor([0.0], dtype=F64),
                         extras={"logp_unconditioned": torch.tensor([[-2.0, -2.0]], dtype=F64)})
    out = self_aligned_reward(alpha=1.0)(s)
    assert float(out.rewards) == pytest.approx(1 - math.exp(-1))
    assert not out.rewards.requires_grad


# =========================================================================== RLPR
def rlpr_state(fmt, answer_logp, answer_mask, prior):
    return state_of(fmt, extras={"answer_logp": torch.tensor(answer_logp, dtype=F64),
                                 "answer_mask": torch.tensor(answer_mask),
                                 "answer_prior": torch.tensor(prior, dtype=F64)})


def test_rlpr_hand_values():
    # row 0: answer token probs .5, .25 -> mean .375; prior .125 -> .25; format 1:
    #        r = .9 * .25 + .1 * 1 = .325
    # row 1: probs .5 (second token masked) -> .5; prior .75 -> max(0, -.25) = 0; format 0 -> 0
    # row 2: no answer tokens -> r_B = 0 -> 0; format 1 -> .1
    lp = [[math.log(0.5), math.log(0.25)], [math.log(0.5), 0.0], [0.0, 0.0]]
    mask = [[True, True], [True, False], [False, False]]
    s = rlpr_state([1.0, 0.0, 1.0], lp, mask, [0.125, 0.75, 0.0])
    torch.testing.assert_close(rlpr_reward()(s).rewards, torch.tensor([0.325, 0.0, 0.1], dtype=F64))
    # no debiasing, no clip: r_B alone
    torch.testing.assert_close(rlpr_reward(format_weight=0.0, debias=False)(s).rewards,
                               torch.tensor([0.375, 0.5, 0.0], dtype=F64))
    # other aggregations of row 0: geo mean sqrt(.5 * .25) = .353553, product .125, mean logp
    logp, m = torch.tensor(lp, dtype=F64), torch.tensor(mask)
    torch.testing.assert_close(answer_probability(logp, m, "geo_mean")[0], torch.tensor(math.sqrt(0.125), dtype=F64))
    torch.testing.assert_close(answer_probability(logp, m, "product")[0], torch.tensor(0.125, dtype=F64))
    torch.testing.assert_close(answer_probability(logp, m, "mean_logp")[0],
                               torch.tensor((math.log(0.5) + math.log(0.25)) / 2, dtype=F64))


@st.composite
def rlpr_inputs(draw):
    n, width = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    probs = draw(st.lists(st.lists(st.floats(0.001, 1), min_size=width, max_size=width), min_size=n, max_size=n))
    mask = draw(st.lists(st.lists(st.booleans(), min_size=width, max_size=width), min_size=n, max_size=n))
    prior = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    fmt = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    return fmt, probs, mask, prior


@given(rlpr_inputs(), st.floats(0, 1))
def test_rlpr_matches_loop_reference_and_is_in_unit_interval(data, f):
    fmt, probs, mask, prior = data
    s = rlpr_state(fmt, [[math.log(p) for p in row] for row in probs], mask, prior)
    out = rlpr_reward(format_weight=f)(s)
    for i in range(len(fmt)):
        kept = [p for p, m in zip(probs[i], mask[i]) if m]
        r_b = sum(kept) / len(kept) if kept else 0.0
        r_hat = max(0.0, r_b - prior[i])
        assert 0.0 <= r_hat <= 1.0
        assert float(out.rewards[i]) == pytest.approx((1 - f) * r_hat + f * fmt[i], abs=1e-9)
        if r_b <= prior[i]:  # reasoning that does not raise the answer's probability earns nothing
            assert float(out.rewards[i]) == pytest.approx(f * fmt[i], abs=1e-12)


@given(rlpr_inputs(), st.floats(0.001, 0.5))
def test_rlpr_monotone_in_every_reference_token_probability(data, bump):
    fmt, probs, mask, prior = data
    base = rlpr_reward()(rlpr_state(fmt, [[math.log(p) for p in row] for row in probs], mask, prior)).rewards
    raised = [[math.log(min(1.0, p + bump)) for p in row] for row in probs]
    assert bool((rlpr_reward()(rlpr_state(fmt, raised, mask, prior)).rewards >= base - 1e-12).all())


# =========================================================================== recipes, bad input
@pytest.mark.parametrize("make", [self_aligned_reward, rlpr_reward])
@presets()
def test_second_batch_composes_before_presets(make, preset):
    out = assert_trains(make() >> preset, seed=4)
    assert not out.state.rewards.requires_grad


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"self_aligned_reward.alpha: expected >= 0.0, got -1"):
        self_aligned_reward(alpha=-1)
    with pytest.raises(RlobjInputError, match=r"self_aligned_reward reads 'extras:logp_unconditioned'"):
        self_aligned_reward()(state_of([0.0]))
    with pytest.raises(RlobjInputError, match=r"logp_unconditioned'\]: log-probabilities must be <= 0"):
        self_aligned_reward()(sar_state([0.0], [[-1.0]], [[0.5]]))
    with pytest.raises(RlobjInputError, match=r"expected shape \(batch seq\) = \(1, 1\), got \(1, 2\)"):
        self_aligned_reward()(state_of([0.0], width=1, extras={"logp_unconditioned": torch.zeros(1, 2, dtype=F64)}))
    with pytest.raises(RlobjInputError, match=r"rlpr_reward.format_weight: expected <= 1.0, got 2"):
        rlpr_reward(format_weight=2)
    with pytest.raises(RlobjInputError, match=r"rlpr_reward.aggregate: expected one of"):
        rlpr_reward(aggregate="max")
    with pytest.raises(RlobjInputError, match=r"answer_logp'\]: rlpr_reward expected a float tensor of shape \(batch A\)"):
        rlpr_reward()(state_of([0.0], extras={"answer_logp": torch.zeros(3)}))
    with pytest.raises(RlobjInputError, match=r"answer_logp'\]: log-probabilities must be <= 0"):
        rlpr_reward()(rlpr_state([0.0], [[0.3]], [[True]], [0.0]))
    with pytest.raises(RlobjInputError, match=r"rlpr_reward reads 'extras:answer_prior'"):
        rlpr_reward()(state_of([0.0], extras={"answer_logp": torch.zeros(1, 1, dtype=F64),
                                              "answer_mask": torch.ones(1, 1, dtype=torch.bool)}))
