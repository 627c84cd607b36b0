"""Advantage terms: hand-computed values, plain-loop references on Hypothesis inputs,
detachment, properties from the math (G1-G6 of the specs), peer goldens, bad input.

Also shows that the zero-sum property catches a deliberately broken term.
"""

import pytest
import torch
from batches import assert_refused_without
from hypothesis import HealthCheck, Phase, assume, find, given, settings
from hypothesis import strategies as st
from terms.advantages._baseline_references import (
    CASES,
    F64,
    GRID,
    NAN,
    OUTCOME_LEVEL,
    assert_group_zero_sum,
    batches,
    make_state,
    per_sequence,
    permute,
    ref_batch_whiten,
    ref_returns,
    scaled,
)

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import broadcast_to_tokens, group_mean
from rlobj.terms._common import sequence_rewards
from rlobj.terms.advantages import (
    batch_whiten,
    gpg_scale,
    group_baseline_whiten,
    group_mean_baseline,
    group_mean_batch_std,
    group_zscore,
    leave_one_out,
    length_weighted_baseline,
    multi_reward_advantage,
    passk_advantage,
)

SETTINGS = settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
REFERENCE_SETTINGS = settings(SETTINGS, max_examples=settings.default.max_examples)  # the profile's
NO_SHRINK = settings(SETTINGS, phases=[Phase.explicit, Phase.generate])


# ----------------------------------------------------------------------------- layer 2: loops
@pytest.mark.parametrize("name", list(CASES))
def test_matches_loop_reference(name):
    term, reference, kwargs = CASES[name]

    @REFERENCE_SETTINGS
    @given(b=batches(**kwargs))
    def check(b):
        if name.startswith("passk") and b["token_rewards"] is not None:
            b = {**b, "token_rewards": None, "rewards": b["rewards"] or [0.0] * len(b["mask"])}
        state = make_state(b)
        got = term(state).advantages
        want = torch.tensor(reference(b), dtype=F64)
        torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-7)

    check()


@pytest.mark.parametrize("name", list(CASES))
def test_advantages_are_detached(name):
    """Advantages carry no gradient even when every reward input requires one."""
    term = CASES[name][0]
    b = {"rewards": [1.0, 0.0, 1.0, 0.0, 1.0, 1.0], "group_ids": [0, 0, 0, 1, 1, 1],
         "mask": [[True, True], [True, False]] * 3, "token_rewards": None,
         "components": [[1.0, 0.5], [0.0, 0.25], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.25, 0.0]]}
    state = make_state(b, requires_grad=True)
    assert state.rewards.requires_grad
    out = term(state)
    assert out.advantages.requires_grad is False
    assert out.advantages.grad_fn is None


@pytest.mark.parametrize("name", OUTCOME_LEVEL)
def test_outcome_advantage_constant_over_tokens_zero_on_padding(name):
    term, _, kwargs = CASES[name]

    @SETTINGS
    @given(b=batches(**kwargs, token_rewards=False))
    def check(b):
        state = make_state(b)
        adv = term(state).advantages
        assert torch.equal(adv[~state.mask], torch.zeros_like(adv[~state.mask]))
        torch.testing.assert_close(adv, broadcast_to_tokens(per_sequence(adv, state.mask), state.mask))

    check()


@pytest.mark.parametrize("name", ["batch_whiten", "batch_whiten_gamma", "group_baseline_whiten"])
def test_token_level_terms_zero_on_padding(name):
    term, _, kwargs = CASES[name]

    @SETTINGS
    @given(b=batches(**kwargs))
    def check(b):
        state = make_state(b)
        adv = term(state).advantages
        assert bool((adv[~state.mask] == 0).all())

    check()


# ----------------------------------------------------------------------------- properties
def zero_sum_property(term, min_size=2, binary=False, weighted=False, config=REFERENCE_SETTINGS):
    """Hypothesis property: ``term`` gives advantages that sum to zero in every group.
    Raises AssertionError (with Hypothesis' falsifying example) when the term breaks it."""

    @config
    @given(b=batches(min_size=min_size, binary=binary, token_rewards=False if binary else None))
    def check(b):
        state = make_state(b)
        weights = state.mask.sum(-1).to(F64) if weighted else None
        assert_group_zero_sum(term(state).advantages, state.mask, state.group_ids, weights)

    check()


ZERO_SUM = ["group_mean_baseline", "group_zscore", "group_zscore_trl_pop", "group_mean_batch_std",
            "leave_one_out", "gpg_scale", "passk_k1", "passk_k2", "passk_k3", "gdpo", "summed"]


@pytest.mark.parametrize("name", ZERO_SUM)
def test_zero_sum_per_group(name):
    term, _, kwargs = CASES[name]
    zero_sum_property(term, min_size=max(2, kwargs.get("min_size", 1)), binary=kwargs.get("binary", False))


def test_length_weighted_baseline_is_length_weighted_zero_sum():
    # OPO's baseline makes sum_j |y_j| A_j = 0 in every group (not the plain sum).
    zero_sum_property(length_weighted_baseline(), min_size=1, weighted=True)


def broken_group_mean_baseline(state: State) -> State:
    """A deliberately broken copy of group_mean_baseline: it forgets to subtract the group
    mean for the last member of every group."""
    rewards = sequence_rewards(state, "broken")
    centred = rewards - group_mean(rewards, state.group_ids)
    last = torch.zeros_like(rewards, dtype=torch.bool)
    for g in torch.unique(state.group_ids):
        last[(state.group_ids == g).nonzero().flatten()[-1]] = True
    advantages = torch.where(last, rewards, centred)
    return state.update(advantages=broadcast_to_tokens(advantages, state.mask).detach())


def test_zero_sum_property_catches_a_broken_term():
    with pytest.raises(AssertionError, match="expected 0"):
        zero_sum_property(broken_group_mean_baseline, config=NO_SHRINK)

    def holds(b):
        state = make_state(b)
        try:
            assert_group_zero_sum(broken_group_mean_baseline(state).advantages, state.mask, state.group_ids)
        except AssertionError:
            return False
        return True

    # Hypothesis shrinks to a minimal counterexample: a group whose mean is not zero.
    example = find(batches(min_size=2, token_rewards=False), lambda b: not holds(b),
                   settings=settings(database=None, max_examples=200))
    state = make_state(example)
    assert not holds(example)
    assert bool((group_mean(state.rewards, state.group_ids) != 0).any())


SHIFT_PER_GROUP = ["group_mean_baseline", "group_zscore", "group_zscore_trl_pop", "leave_one_out",
                   "length_weighted_baseline", "gpg_scale", "group_baseline_whiten", "summed", "gdpo"]


@pytest.mark.parametrize("name", SHIFT_PER_GROUP + ["group_mean_batch_std", "batch_whiten"])
def test_shift_invariance(name):
    """G2: adding a constant to the rewards of a group (every group its own constant; one
    constant for the whole batch for the batch-level terms) leaves A unchanged."""
    term, _, kwargs = CASES[name]
    per_group = name in SHIFT_PER_GROUP

    @SETTINGS
    @given(b=batches(**kwargs, grid=True), shifts=st.lists(GRID.map(lambda x: 2 * x), min_size=45, max_size=45))
    def check(b, shifts):
        ids = sorted(set(b["group_ids"]))
        shift = [shifts[ids.index(g) if per_group else 0] for g in b["group_ids"]]
        moved = dict(b)
        if b["rewards"] is not None:
            moved["rewards"] = [r + c for r, c in zip(b["rewards"], shift, strict=False)]
        else:  # token rewards only: shift the last valid token's reward
            moved["token_rewards"] = [[v + (c if t == max(k for k, m in enumerate(row) if m) else 0.0)
                                       for t, v in enumerate(vals)]
                                      for vals, row, c in zip(b["token_rewards"], b["mask"], shift, strict=False)]
        moved["components"] = [[v + c for v in comp] for comp, c in zip(b["components"], shift, strict=False)]
        torch.testing.assert_close(term(make_state(moved)).advantages, term(make_state(b)).advantages,
                                   atol=1e-9, rtol=1e-7)

    check()


LINEAR = ["group_mean_baseline", "leave_one_out", "length_weighted_baseline", "gpg_scale"]
INVARIANT = {
    "group_zscore": group_zscore(eps=0.0),
    "group_zscore_pop": group_zscore(eps=0.0, unbiased=False),
    "group_mean_batch_std": group_mean_batch_std(eps=0.0),
    "gdpo": multi_reward_advantage(weights=(1.0, 0.5), eps=0.0),
    "summed": multi_reward_advantage(weights=(1.0, 0.5), mode="summed", eps=0.0),
    "batch_whiten": batch_whiten(eps=1e-300),
    "group_baseline_whiten": group_baseline_whiten(eps=1e-300),
}


@pytest.mark.parametrize("name", LINEAR)
def test_scale_linear_for_no_std_variants(name):
    term, _, kwargs = CASES[name]

    @SETTINGS
    @given(b=batches(**kwargs), a=st.sampled_from([0.25, 0.5, 2.0, 3.0, 10.0]))
    def check(b, a):
        torch.testing.assert_close(term(make_state(scaled(b, a))).advantages,
                                   a * term(make_state(b)).advantages, atol=1e-9, rtol=1e-7)

    check()


@pytest.mark.parametrize("name", list(INVARIANT))
def test_scale_invariant_for_std_variants(name):
    term = INVARIANT[name]
    whiten = "whiten" in name

    @SETTINGS
    @given(b=batches(min_size=2, grid=True), a=st.sampled_from([0.25, 0.5, 2.0, 3.0, 10.0]))
    def check(b, a):
        base = term(make_state(b)).advantages
        if whiten:  # a whitened batch whose spread is ~0 is all rounding noise
            ref = ref_batch_whiten(b, eps=0.0 + 1e-300) if name == "batch_whiten" else None
            spread = make_state(b)
            assume(float(base[spread.mask].abs().max()) > 1e-3 if ref is None else True)
            values = [v for row in ref_returns(b, 1.0) for v in row.values()] if ref is not None else []
            assume(not values or max(values) - min(values) > 1e-3)
        torch.testing.assert_close(term(make_state(scaled(b, a))).advantages, base, atol=1e-9, rtol=1e-7)

    check()


@pytest.mark.parametrize("name", list(CASES))
def test_permutation_equivariance(name):
    """G4: permuting the sequences of the batch (within and across groups) permutes A."""
    term, _, kwargs = CASES[name]

    @SETTINGS
    @given(b=batches(**kwargs, token_rewards=False if kwargs.get("binary") else None), data=st.data())
    def check(b, data):
        order = data.draw(st.permutations(range(len(b["mask"]))))
        moved = term(make_state(permute(b, order))).advantages
        torch.testing.assert_close(moved, term(make_state(b)).advantages[list(order)], atol=1e-9, rtol=1e-7)

    check()


DEGENERATE = {
    "group_mean_baseline": group_mean_baseline(),
    "group_zscore": group_zscore(),
    "group_zscore_eps0": group_zscore(eps=0.0),
    "group_zscore_pop": group_zscore(unbiased=False),
    "group_mean_batch_std": group_mean_batch_std(),
    "leave_one_out": leave_one_out(),
    "length_weighted_baseline": length_weighted_baseline(),
    "gpg_scale": gpg_scale(),
    "summed": multi_reward_advantage(weights=(1.0,), mode="summed"),
    "gdpo": multi_reward_advantage(weights=(1.0,)),
}


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("name", list(DEGENERATE))
def test_all_equal_groups_give_exactly_zero(name, dtype):
    """G5: a group whose rewards are all equal gets A = 0 exactly (also for float32 values
    like seven rewards of 0.7, whose naive mean is off by an ulp)."""
    term = DEGENERATE[name]

    @SETTINGS
    @given(b=batches(min_size=2, max_size=8, constant_groups=True, token_rewards=False, n_components=1))
    def check(b):
        b = {**b, "components": [[r] for r in b["rewards"]]}
        adv = term(make_state(b, dtype=dtype)).advantages
        assert torch.equal(adv, torch.zeros_like(adv)), adv

    check()


def test_passk_all_correct_or_all_wrong_groups_give_zero():
    @SETTINGS
    @given(b=batches(min_size=3, binary=True, constant_groups=True, token_rewards=False), k=st.integers(1, 3))
    def check(b, k):
        adv = passk_advantage(k=k)(make_state(b)).advantages
        assert torch.equal(adv, torch.zeros_like(adv))

    check()


# ----------------------------------------------------------------------------- relations between terms
@SETTINGS
@given(b=batches(min_size=2))
def test_rloo_is_g_over_g_minus_one_times_group_mean_baseline(b):
    state = make_state(b)
    n = torch.tensor([b["group_ids"].count(g) for g in b["group_ids"]], dtype=F64)
    scale = broadcast_to_tokens(n / (n - 1), state.mask)
    torch.testing.assert_close(leave_one_out()(state).advantages,
                               scale * group_mean_baseline()(state).advantages, atol=1e-9, rtol=1e-7)


@SETTINGS
@given(b=batches(equal_lengths=True))
def test_opo_equals_group_mean_baseline_when_lengths_are_equal(b):
    state = make_state(b)
    torch.testing.assert_close(length_weighted_baseline()(state).advantages,
                               group_mean_baseline()(state).advantages, atol=1e-9, rtol=1e-7)


@SETTINGS
@given(b=batches(min_size=2, binary=True, token_rewards=False))
def test_passk_with_k1_is_grpo_with_population_std(b):
    # pass@1 of a group is its accuracy p; A+ = (1-p)/sqrt(p(1-p)), A- = -p/sqrt(p(1-p)).
    state = make_state(b)
    torch.testing.assert_close(passk_advantage(k=1)(state).advantages,
                               group_zscore(eps=0.0, unbiased=False)(state).advantages, atol=1e-9, rtol=1e-7)


@SETTINGS
@given(b=batches(min_size=2, n_components=1))
def test_gdpo_with_one_component_is_batch_renormalised_grpo(b):
    state = make_state(b)
    grpo_state = make_state({**b, "rewards": [c[0] for c in b["components"]], "token_rewards": None})
    grpo = per_sequence(group_zscore(eps=1e-6)(grpo_state).advantages, state.mask)
    s = grpo.std()
    expected = (grpo - grpo.mean()) / (s + 1e-6) if float(s) > 0 else torch.zeros_like(grpo)
    got = multi_reward_advantage(weights=(1.0,), eps=1e-6)(state).advantages
    torch.testing.assert_close(got, broadcast_to_tokens(expected, state.mask), atol=1e-9, rtol=1e-7)
    # "summed" with one component is exactly the GRPO advantage (no batch renormalisation).
    summed = multi_reward_advantage(weights=(1.0,), mode="summed")(state).advantages
    torch.testing.assert_close(summed, broadcast_to_tokens(grpo, state.mask), atol=1e-9, rtol=1e-7)


@SETTINGS
@given(b=batches(min_size=2), a=st.sampled_from([0.25, 4.0, 10.0]))
def test_gdpo_is_invariant_to_the_scale_of_one_component(b, a):
    """Decoupled normalisation: rescaling one reward component changes nothing (eps=0)."""
    moved = {**b, "components": [[c[0] * a, c[1]] for c in b["components"]]}
    term = multi_reward_advantage(weights=(1.0, 0.5), eps=0.0)
    torch.testing.assert_close(term(make_state(moved)).advantages, term(make_state(b)).advantages,
                               atol=1e-9, rtol=1e-7)


def test_group_terms_sum_token_rewards_per_sequence():
    # outcome [1, 0] + token rewards [[0.25, 0.5], [0.75, pad]] -> r = [1.75, 0.75], mean 1.25
    state = State.from_batch(logp=torch.zeros(2, 2, dtype=F64), mask=torch.tensor([[1, 1], [1, 0]]),
                             rewards=torch.tensor([1.0, 0.0], dtype=F64), group_ids=torch.tensor([7, 7]),
                             token_rewards=torch.tensor([[0.25, 0.5], [0.75, NAN]], dtype=F64))
    adv = group_mean_baseline()(state).advantages
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.5], [-0.5, 0.0]], dtype=F64))
    only_tokens = State.from_batch(logp=state.logp, mask=state.mask, group_ids=state.group_ids,
                                   token_rewards=state.token_rewards)
    # r = [0.75, 0.75]: an all-equal group -> exactly 0
    assert torch.equal(group_zscore()(only_tokens).advantages, torch.zeros(2, 2, dtype=F64))


# ----------------------------------------------------------------------------- layer 1: hand values
def _state(rewards, group_ids, lengths=None, seq=None, **extra):
    n = len(rewards)
    lengths = lengths or [1] * n
    seq = seq or max(lengths)
    mask = torch.tensor([[t < n_ for t in range(seq)] for n_ in lengths])
    return State.from_batch(logp=torch.zeros(mask.shape, dtype=F64), mask=mask,
                            rewards=torch.tensor(rewards, dtype=F64), group_ids=torch.tensor(group_ids), **extra)


def _seq(state, term):
    return per_sequence(term(state).advantages, state.mask).tolist()


def test_hand_group_mean_baseline():
    # group 0: r = (1, 0), mean 1/2 -> (1/2, -1/2); group 1: r = (0.5) alone -> 0
    state = _state([1.0, 0.0, 0.5], [0, 0, 1], lengths=[2, 1, 3])
    adv = group_mean_baseline()(state).advantages
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.5, 0], [-0.5, 0, 0], [0, 0, 0]], dtype=F64))


# One group r = (1, 0, 0, 0): mean 1/4, deviations (3/4, -1/4, -1/4, -1/4), sum of squares 3/4.
# Bessel: var = (3/4)/3 = 1/4, std = 1/2.  Population: var = 3/16, std = sqrt(3)/4 = 0.4330127...
@pytest.mark.parametrize("peer, eps, unbiased, plus, minus", [
    ("verl", 1e-6, True, 1.499997000006, -0.499999000002),            # 0.75/0.500001, -0.25/0.500001
    ("TRL", 1e-4, True, 1.4997000599880024, -0.4999000199960008),     # 0.75/0.5001, -0.25/0.5001
    ("OpenRLHF", 1e-9, True, 1.4999999970000002, -0.49999999900000003),  # 0.75/0.500000001
    ("population", 1e-6, False, 1.732046807578115, -0.5773489358593717),  # 0.75/(0.4330127+1e-6)
])
def test_golden_group_zscore_peers(peer, eps, unbiased, plus, minus):
    state = _state([1.0, 0.0, 0.0, 0.0], [3, 3, 3, 3])
    got = _seq(state, group_zscore(eps=eps, unbiased=unbiased))
    assert got == pytest.approx([plus, minus, minus, minus], rel=1e-12, abs=0)


def test_golden_group_zscore_peers_differ():
    state = _state([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0])
    values = {eps: _seq(state, group_zscore(eps=eps))[0] for eps in (1e-6, 1e-4, 1e-9)}
    assert len({round(v, 12) for v in values.values()}) == 3
    assert _seq(state, group_zscore(unbiased=False))[0] != pytest.approx(values[1e-6], rel=1e-3)


def test_golden_group_zscore_singleton_modes():
    # group 0: r = (1, 0): mean 1/2, Bessel std sqrt(1/2) = 0.70710678 -> +-0.5/(0.70710678 + 1e-6)
    # group 5: r = (2) alone: verl uses mean 0, std 1 -> 2/(1 + 1e-6) = 1.999998000002; 'zero' -> 0
    state = _state([1.0, 0.0, 2.0], [0, 0, 5])
    assert _seq(state, group_zscore(singleton="verl")) == pytest.approx(
        [0.7071057811879616, -0.7071057811879616, 1.9999980000020001], rel=1e-12)
    assert _seq(state, group_zscore(singleton="zero")) == pytest.approx(
        [0.7071057811879616, -0.7071057811879616, 0.0], rel=1e-12)
    # population std of (1, 0) is 1/2 -> +-0.5/0.500001 = +-0.999998000004
    assert _seq(state, group_zscore(unbiased=False, singleton="zero")) == pytest.approx(
        [0.999998000004, -0.999998000004, 0.0], rel=1e-12)
    for unbiased in (True, False):
        with pytest.raises(RlobjInputError, match=r"group_ids: group_zscore needs at least 2.*\[5\]"):
            group_zscore(unbiased=unbiased)(state)


def test_hand_group_mean_batch_std():
    # r = (1, 0 | 3, 1): group means 1/2, 2 -> centred (1/2, -1/2, 1, -1).
    # batch mean 5/4, squares of deviations 1/16 + 25/16 + 49/16 + 1/16 = 76/16 = 4.75,
    # Bessel std sqrt(4.75/3) = 1.2583057392117916 -> A = centred / (1.2583057392117916 + 1e-6)
    state = _state([1.0, 0.0, 3.0, 1.0], [0, 0, 1, 1])
    assert _seq(state, group_mean_batch_std()) == pytest.approx(
        [0.39735939133029047, -0.39735939133029047, 0.7947187826605809, -0.7947187826605809], rel=1e-12)


def test_hand_leave_one_out():
    # r = (1, 0, 0.5): others' means (0.25, 0.75, 0.5) -> A = (0.75, -0.75, 0) = 3/2 * (r - 1/2)
    assert _seq(_state([1.0, 0.0, 0.5], [0, 0, 0]), leave_one_out()) == pytest.approx([0.75, -0.75, 0.0])


def test_hand_batch_whiten():
    # row 0: 3 tokens, token rewards (0, -0.5, 0) + outcome 1 on the last -> (0, -0.5, 1)
    # row 1: 2 tokens, token rewards (0.5, 0) + outcome 0 -> (0.5, 0)
    state = State.from_batch(logp=torch.zeros(2, 3, dtype=F64), mask=torch.tensor([[1, 1, 1], [1, 1, 0]]),
                             rewards=torch.tensor([1.0, 0.0], dtype=F64),
                             token_rewards=torch.tensor([[0.0, -0.5, 0.0], [0.5, 0.0, 9.0]], dtype=F64))
    # gamma = 1: returns (0.5, 0.5, 1 | 0.5, 0); mean 0.5, deviations (0, 0, .5 | 0, -.5),
    # population var 0.5/5 = 0.1 -> A = dev/sqrt(0.1 + 1e-8): 0.5/sqrt(0.10000001) = 1.5811387510272539
    a = 1.5811387510272539
    torch.testing.assert_close(batch_whiten()(state).advantages,
                               torch.tensor([[0, 0, a], [0, -a, 0]], dtype=F64), atol=1e-12, rtol=1e-12)
    # gamma = 0.5: row 0: G2 = 1, G1 = -0.5 + 0.5*1 = 0, G0 = 0 + 0.5*0 = 0; row 1: G1 = 0, G0 = 0.5.
    # values (0, 0, 1 | 0.5, 0): mean 0.3, deviations (-.3, -.3, .7 | .2, -.3), var 0.8/5 = 0.16
    want = [[-0.7499999765625012, -0.7499999765625012, 1.7499999453125026], [0.4999999843750008, -0.7499999765625012, 0]]
    torch.testing.assert_close(batch_whiten(gamma=0.5)(state).advantages, torch.tensor(want, dtype=F64),
                               atol=1e-12, rtol=1e-12)


def test_hand_group_baseline_whiten():
    # r = (1, 0 | 1, 1), lengths (1, 3 | 2, 2): centred (1/2, -1/2 | 0, 0).
    # token values: 0.5 (x1), -0.5 (x3), 0 (x4): mean (0.5 - 1.5)/8 = -1/8,
    # deviations 5/8, -3/8 (x3), 1/8 (x4); var = (25 + 27 + 4)/64/8 = 0.875/8 = 0.109375
    state = _state([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1], lengths=[1, 3, 2, 2])
    p, m, z = 1.8898222786542624, -1.1338933671925575, 0.3779644557308525  # dev/sqrt(0.109375 + 1e-8)
    want = torch.tensor([[p, 0, 0], [m, m, m], [z, z, 0], [z, z, 0]], dtype=F64)
    torch.testing.assert_close(group_baseline_whiten()(state).advantages, want, atol=1e-12, rtol=1e-12)


def test_hand_length_weighted_baseline():
    # r = (1, 0, 0), lengths (1, 2, 3): b = (1*1 + 0 + 0)/6 = 1/6 -> A = (5/6, -1/6, -1/6)
    # (the plain group mean 1/3 would give (2/3, -1/3, -1/3))
    state = _state([1.0, 0.0, 0.0], [0, 0, 0], lengths=[1, 2, 3])
    assert _seq(state, length_weighted_baseline()) == pytest.approx([5 / 6, -1 / 6, -1 / 6], rel=1e-12)


def test_hand_gpg_scale():
    # B = 4; group 1 (1, 1) is flat, M = 2 -> alpha = 4/(4-2) = 2; A = 2 (r - mean) = (1, -1, 0, 0)
    state = _state([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1])
    out = gpg_scale()(state)
    assert per_sequence(out.advantages, state.mask).tolist() == [1.0, -1.0, 0.0, 0.0]
    assert float(out.metrics["adv/gpg_alpha"]) == 2.0
    assert _seq(state, gpg_scale(norm=2.0)) == [0.5, -0.5, 0.0, 0.0]


def test_hand_passk():
    state = _state([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0])
    # k = 2, N = 4, c = 1: Rbar = 1 - C(3,2)/C(4,2) = 1/2, sigma = 1/2;
    # A+ = (1 - 1/2)/(1/2) = 1; A- = (1 - 1/2 - C(2,1)/C(3,1))/(1/2) = (1/2 - 2/3)*2 = -1/3
    assert _seq(state, passk_advantage(k=2)) == pytest.approx([1.0, -1 / 3, -1 / 3, -1 / 3], rel=1e-12)
    # k = 3: Rbar = 1 - 1/4 = 3/4, sigma = sqrt(3)/4; A+ = (1/4)/(sqrt(3)/4) = 1/sqrt(3);
    # A- = (1/4 - C(2,2)/C(3,2))/(sqrt(3)/4) = (1/4 - 1/3)*4/sqrt(3) = -1/(3 sqrt(3))
    assert _seq(state, passk_advantage(k=3)) == pytest.approx(
        [0.5773502691896258, -0.19245008972987526, -0.19245008972987526, -0.19245008972987526], rel=1e-12)
    # k = 4 = N: every 4-subset contains the correct one -> Rbar = 1, sigma = 0 -> A = 0
    assert _seq(state, passk_advantage(k=4)) == [0.0, 0.0, 0.0, 0.0]


def test_hand_gdpo_vs_summed():
    # components (correct, format) for one group of 4: (1,0), (0,0), (0,1), (0,1)
    comps = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=F64)
    state = _state([0.0] * 4, [0] * 4, extras={"reward_components": comps})
    # decoupled: z_correct = (3/4, -1/4, -1/4, -1/4)/(1/2 + 1e-6), z_format = (-1/2, -1/2, 1/2, 1/2)/(sqrt(1/3) + 1e-6)
    # = (1.4999970, -0.4999990 x3) and (-0.8660239, -0.8660239, 0.8660239, 0.8660239);
    # sum (0.6339731, -1.3660229, 0.3660249, 0.3660249), mean 0, Bessel std 0.9193..., renormalised:
    assert _seq(state, multi_reward_advantage(weights=(1.0, 1.0))) == pytest.approx(
        [0.6895501702962533, -1.4857749193997074, 0.398112374551727, 0.398112374551727], rel=1e-9)
    # summed: r = (1, 0, 1, 1), mean 3/4, Bessel std 1/2 -> (1/4, -3/4, 1/4, 1/4)/(1/2 + 1e-6)
    assert _seq(state, multi_reward_advantage(weights=(1.0, 1.0), mode="summed")) == pytest.approx(
        [0.499999000002, -1.499997000006, 0.499999000002, 0.499999000002], rel=1e-12)
    # integer 0/1 components must not truncate fractional weights (0.5 stays 0.5)
    ints = _state([0.0] * 4, [0] * 4, extras={"reward_components": comps.long()})
    torch.testing.assert_close(multi_reward_advantage(weights=(1.0, 0.5), mode="summed")(ints).advantages,
                               multi_reward_advantage(weights=(1.0, 0.5), mode="summed")(state).advantages)


def test_seven_rewards_of_0_7_in_float32_give_zero():
    # Regression: the naive float32 group mean of seven 0.7s is 0.7 + 6e-8, so std ~6e-8 and the
    # z-score was 6e-8/(6e-8 + 1e-6) ~ 0.056 for every member of an all-equal group.
    state = State.from_batch(logp=torch.zeros(7, 1), mask=torch.ones(7, 1, dtype=torch.bool),
                             rewards=torch.full((7,), 0.7), group_ids=torch.zeros(7, dtype=torch.long))
    for term in (group_zscore(), group_mean_baseline(), leave_one_out(), length_weighted_baseline(), gpg_scale()):
        assert torch.equal(term(state).advantages, torch.zeros(7, 1)), term


# ----------------------------------------------------------------------------- bad input
ALL_TERMS = [c[0] for c in CASES.values()]


@pytest.mark.parametrize("term", [c[0] for n, c in CASES.items() if not n.startswith(("gdpo", "summed"))],
                         ids=[n for n in CASES if not n.startswith(("gdpo", "summed"))])
def test_missing_rewards_is_a_clear_error(term):
    assert_refused_without(term, "rewards", group_ids=torch.tensor([0, 0]))


def test_multi_reward_missing_or_bad_components():
    state = _state([1.0, 0.0], [0, 0])
    with pytest.raises(RlobjInputError, match="reward_components"):
        multi_reward_advantage()(state)
    bad_shape = _state([1.0, 0.0], [0, 0], extras={"reward_components": torch.zeros(2, 3)})
    with pytest.raises(RlobjInputError, match=r"reward_components.*\(2, 1\).*\(2, 3\)"):
        multi_reward_advantage(weights=(1.0,))(bad_shape)
    with pytest.raises(RlobjInputError, match="reward_components.*finite"):  # State checks extras
        _state([1.0, 0.0], [0, 0], extras={"reward_components": torch.tensor([[NAN], [1.0]])})


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("batch_whiten")])
def test_missing_group_ids_is_a_clear_error(name):
    term = CASES[name][0]
    state = State.from_batch(logp=torch.zeros(2, 1), mask=torch.ones(2, 1, dtype=torch.bool),
                             rewards=torch.tensor([1.0, 0.0]),
                             extras={"reward_components": torch.tensor([[1.0, 0.0], [0.0, 1.0]])})
    with pytest.raises(RlobjInputError, match="group_ids"):
        term(state)


@pytest.mark.parametrize("term", [group_zscore(), leave_one_out(), passk_advantage(k=2),
                                  multi_reward_advantage(), multi_reward_advantage(mode="summed")])
def test_singleton_group_where_two_are_needed(term):
    state = _state([1.0, 0.0, 1.0], [0, 0, 4], extras={"reward_components": torch.tensor([[1.0], [0.0], [1.0]])})
    with pytest.raises(RlobjInputError, match=r"group_ids: .* needs at least 2 responses per group.*\[4\]"):
        term(state)


def test_passk_group_smaller_than_k():
    with pytest.raises(RlobjInputError, match=r"group_ids: passk_advantage needs at least 4"):
        passk_advantage(k=4)(_state([1.0, 0.0, 1.0], [0, 0, 0]))


def test_nan_rewards_are_refused_by_the_state():
    with pytest.raises(RlobjInputError, match="rewards: expected finite values, got nan"):
        _state([1.0, NAN], [0, 0])
    with pytest.raises(RlobjInputError, match="rewards"):
        _state([1.0, float("inf")], [0, 0])


def test_passk_refuses_non_binary_rewards():
    with pytest.raises(RlobjInputError, match=r"rewards: passk_advantage needs binary.*got \[0.5\]"):
        passk_advantage(k=1)(_state([1.0, 0.5], [0, 0]))


@pytest.mark.parametrize("build, field", [
    (lambda: group_zscore(eps=-1e-6), "group_zscore.eps"),
    (lambda: group_zscore(singleton="drop"), "group_zscore.singleton"),
    (lambda: group_mean_batch_std(eps=-1.0), "group_mean_batch_std.eps"),
    (lambda: batch_whiten(gamma=1.5), "batch_whiten.gamma"),
    (lambda: batch_whiten(gamma=-0.1), "batch_whiten.gamma"),
    (lambda: batch_whiten(eps=-1e-8), "batch_whiten.eps"),
    (lambda: group_baseline_whiten(eps=-1.0), "group_baseline_whiten.eps"),
    (lambda: gpg_scale(norm=0.0), "gpg_scale.norm"),
    (lambda: passk_advantage(k=0), "passk_advantage.k"),
    (lambda: multi_reward_advantage(mode="mean"), "multi_reward_advantage.mode"),
    (lambda: multi_reward_advantage(weights=()), "multi_reward_advantage.weights"),
    (lambda: multi_reward_advantage(weights=(1.0, float("nan"))), "multi_reward_advantage.weights"),
    (lambda: multi_reward_advantage(eps=-1.0), "multi_reward_advantage.eps"),
])
def test_bad_hyperparameters(build, field):
    with pytest.raises(RlobjInputError, match=field.replace(".", r"\.")):
        build()
