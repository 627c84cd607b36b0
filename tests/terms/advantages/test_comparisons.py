"""CANON and BRPO advantage estimators (rlobj/terms/advantages/comparisons.py): hand values, a
plain-loop reference on Hypothesis inputs, properties from the math (Dr. GRPO special case,
zero sums, shift and monotone-transform invariance; BRPO's zero expectation over references),
detached outputs, recipes with grpo / dr_grpo / dapo, bad input.
"""

import itertools

import pytest
import torch
from batches import assert_trains, leaf, make_batch, presets, replace_advantage
from hypothesis import given
from hypothesis import strategies as st

from rlobj import Objective, grpo
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import (
    brpo_advantage,
    canon_advantage,
    conditional_halves,
    pick_references,
)

F64 = torch.float64


def state_of(rewards, group_ids, entropy=None, lengths=None, width=3, extras=None):
    n = len(rewards)
    lengths = lengths or [width] * n
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    fields = dict(logp=torch.full((n, width), -0.5, dtype=F64), mask=mask, rewards=torch.tensor(rewards, dtype=F64),
                  group_ids=torch.tensor(group_ids), extras=extras or {})
    if entropy is not None:  # one value per sequence, copied to its tokens
        fields["entropy"] = torch.tensor(entropy, dtype=F64)[:, None].expand(n, width).clone()
    return State.from_batch(**fields)


def per_seq(out):
    return out.advantages[:, 0]


# =========================================================================== CANON
def test_canon_hand_values():
    # one group, entropies 1, 2, 3, 0.5 -> ascending rows 3, 0 | 1, 2: C- = {3, 0} (rewards 1, 1),
    # C+ = {1, 2} (rewards 0, 1): mu- = 1, mu+ = 0.5
    s = state_of([1.0, 0.0, 1.0, 1.0], [0, 0, 0, 0], entropy=[1.0, 2.0, 3.0, 0.5])
    # pure inter (mu_w = 1): C-: r - mu+ -> 1 - .5 = .5 (rows 0, 3); C+: r - mu- -> 0 - 1 = -1, 1 - 1 = 0
    assert per_seq(canon_advantage()(s)).tolist() == [0.5, -1.0, 0.0, 0.5]
    # pure intra (mu_w = 0): r - own mean: 1 - 1 = 0, 0 - .5 = -.5, 1 - .5 = .5, 1 - 1 = 0
    assert per_seq(canon_advantage(mu=0.0)(s)).tolist() == [0.0, -0.5, 0.5, 0.0]
    # mu_w = 0.25: 0.25 * inter + 0.75 * intra = [.125, -.625, .375, .125]; / L = 2 -> halved
    torch.testing.assert_close(per_seq(canon_advantage(mu=0.25, norm_const=2.0)(s)),
                               torch.tensor([0.0625, -0.3125, 0.1875, 0.0625], dtype=F64))
    # alpha = 2, beta = 0.1 (entropy form): C+: r - 2 mu- + .1 -> 0 - 2 + .1 = -1.9, 1 - 2 + .1 = -.9;
    # C-: 2 r - mu+ - .1 -> 2 - .5 - .1 = 1.4
    torch.testing.assert_close(per_seq(canon_advantage(alpha=2.0, beta=0.1)(s)),
                               torch.tensor([1.4, -1.9, -0.9, 1.4], dtype=F64))


def test_canon_length_metric_and_odd_group():
    # lengths 3, 1, 2 in one group of 3: C- = {row 1} (len 1, r = 0), C+ = {rows 2, 0} (r = 1, 0):
    # mu- = 0, mu+ = .5. Length form with alpha = 2: C+ (long): 2 r - mu- -> row 0: 0, row 2: 2;
    # C- (short): r - 2 mu+ -> 0 - 1 = -1
    s = state_of([0.0, 0.0, 1.0], [7, 7, 7], lengths=[3, 1, 2])
    assert per_seq(canon_advantage(metric="length", alpha=2.0)(s)).tolist() == [0.0, -1.0, 2.0]
    assert conditional_halves(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([7, 7, 7])).tolist() == [True, False, True]
    # ties keep batch order (stable sort): all equal -> first floor(n/2) rows are C-
    assert conditional_halves(torch.zeros(5), torch.zeros(5, dtype=torch.long)).tolist() == [False, False, True, True, True]


def test_canon_index_metric_and_anneal():
    # index metric: rows of group 0 in batch order are positions 0, 1 -> C- = {row 0}, C+ = {row 2}
    s = state_of([1.0, 0.0, 0.0, 0.0], [0, 1, 0, 1])
    # group 0: mu- = 1, mu+ = 0: row 0 (C-): 1 - 0 = 1; row 2 (C+): 0 - 1 = -1; group 1 all 0 -> 0
    assert per_seq(canon_advantage(metric="index")(s)).tolist() == [1.0, 0.0, -1.0, 0.0]
    # anneal: mu_w = batch accuracy = 1/4; intra of row 0 = 1 - 1 = 0 -> A = .25 * 1 + .75 * 0
    out = canon_advantage(metric="index", schedule="anneal")(s)
    assert per_seq(out).tolist() == [0.25, 0.0, -0.25, 0.0]
    assert float(out.metrics["canon/mu_w"]) == 0.25


def canon_loop(rewards, group_ids, metric, mu, alpha, beta, norm_const, kind="entropy"):
    """CANON written from the formula with plain loops (stable ascending sort per group)."""
    adv = [0.0] * len(rewards)
    for g in dict.fromkeys(group_ids):
        rows = [i for i, h in enumerate(group_ids) if h == g]
        rows_sorted = sorted(rows, key=lambda i: metric[i])  # Python's sort is stable
        low, high = rows_sorted[: len(rows) // 2], rows_sorted[len(rows) // 2:]
        mu_low = sum(rewards[i] for i in low) / len(low)
        mu_high = sum(rewards[i] for i in high) / len(high)
        for i in rows:
            r = rewards[i]
            if i in high:
                inter = (alpha * r - mu_low + beta) if kind == "length" else (r - alpha * mu_low + beta)
                intra = r - mu_high
            else:
                inter = (r - alpha * mu_high - beta) if kind == "length" else (alpha * r - mu_high - beta)
                intra = r - mu_low
            adv[i] = (mu * inter + (1 - mu) * intra) / norm_const
    return adv


@st.composite
def grouped(draw, min_size=2, max_size=5, even=False):
    sizes = draw(st.lists(st.integers(min_size, max_size), min_size=1, max_size=4))
    if even:
        sizes = [2 * ((s + 1) // 2) for s in sizes]
    group_ids = [g for g, size in enumerate(sizes) for _ in range(size)]
    n = len(group_ids)
    rewards = draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-2, 2)), min_size=n, max_size=n))
    metric = draw(st.lists(st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0]), min_size=n, max_size=n))  # ties on purpose
    order = draw(st.permutations(range(n)))  # groups interleaved in the batch
    return [rewards[i] for i in order], [group_ids[i] for i in order], [metric[i] for i in order]


@given(grouped(), st.floats(0, 1), st.sampled_from([1.0, 0.5, 2.0]), st.sampled_from([0.0, 0.3]),
       st.sampled_from([1.0, 4.0]), st.sampled_from(["entropy", "length"]))
def test_canon_matches_loop_reference(data, mu, alpha, beta, norm_const, kind):
    rewards, group_ids, metric = data
    if kind == "entropy":
        s = state_of(rewards, group_ids, entropy=metric)
    else:  # lengths 1..5 from the metric values (no empty rows: their advantage is invisible)
        lengths = [int(m * 2) + 1 for m in metric]
        s = state_of(rewards, group_ids, lengths=lengths, width=5)
        metric = lengths
    out = canon_advantage(metric=kind, mu=mu, alpha=alpha, beta=beta, norm_const=norm_const)(s)
    expected = canon_loop(rewards, group_ids, metric, mu, alpha, beta, norm_const, kind)
    torch.testing.assert_close(per_seq(out), torch.tensor(expected, dtype=F64))
    # constant over the valid tokens of each row, zero on padding (G6)
    assert bool((out.advantages == torch.where(s.mask, per_seq(out)[:, None], 0.0)).all())


@given(grouped(even=True))
def test_canon_half_weight_is_dr_grpo_on_even_groups(data):
    rewards, group_ids, metric = data
    s = state_of(rewards, group_ids, entropy=metric)
    r, g = torch.tensor(rewards, dtype=F64), torch.tensor(group_ids)
    mean = torch.stack([r[g == gid].mean() for gid in g])
    torch.testing.assert_close(per_seq(canon_advantage(mu=0.5)(s)), r - mean)
    torch.testing.assert_close(per_seq(canon_advantage(mu=0.5, norm_const=8.0)(s)), (r - mean) / 8)


@given(grouped(), grouped(even=True))
def test_canon_zero_sums(any_groups, even_groups):
    for (rewards, group_ids, metric), mu in ((any_groups, 0.0), (even_groups, 1.0)):
        adv = per_seq(canon_advantage(mu=mu)(state_of(rewards, group_ids, entropy=metric)))
        g = torch.tensor(group_ids)
        for gid in torch.unique(g):  # pure intra: any n; pure inter: even n (|C+| = |C-|)
            assert abs(float(adv[g == gid].sum())) < 1e-9


@given(grouped(), st.floats(0, 1), st.floats(-3, 3))
def test_canon_shift_invariance_and_constant_groups(data, mu, shift):
    rewards, group_ids, metric = data
    base = per_seq(canon_advantage(mu=mu)(state_of(rewards, group_ids, entropy=metric)))
    shifted = per_seq(canon_advantage(mu=mu)(state_of([r + shift for r in rewards], group_ids, entropy=metric)))
    torch.testing.assert_close(shifted, base)
    constant = per_seq(canon_advantage(mu=mu)(state_of([shift] * len(rewards), group_ids, entropy=metric)))
    assert bool((constant.abs() < 1e-12).all())


@given(grouped(), st.floats(0, 1))
def test_canon_depends_only_on_the_metric_order(data, mu):
    rewards, group_ids, metric = data
    base = per_seq(canon_advantage(mu=mu)(state_of(rewards, group_ids, entropy=metric)))
    # a strictly increasing transform keeps the order (and the ties)
    warped = [float(torch.tensor(m).exp() * 3 + 1) for m in metric]
    torch.testing.assert_close(per_seq(canon_advantage(mu=mu)(state_of(rewards, group_ids, entropy=warped))), base)


@given(grouped(even=True))
def test_canon_metric_sign_swap_leaves_pure_inter_unchanged_on_even_groups(data):
    rewards, group_ids, _ = data
    n = len(rewards)
    metric = [float(i) for i in torch.randperm(n, generator=torch.Generator().manual_seed(n))]  # distinct
    flipped = [-m for m in metric]
    a = per_seq(canon_advantage()(state_of(rewards, group_ids, entropy=metric)))
    b = per_seq(canon_advantage()(state_of(rewards, group_ids, entropy=flipped)))
    torch.testing.assert_close(a, b)


def test_canon_reads_entropy_from_the_vocab_view_and_is_detached():
    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=1))
    entropy = batch["entropy"].clone().requires_grad_(True)
    batch["entropy"] = entropy
    out = Objective(canon_advantage() >> grpo.terms[1] >> grpo.terms[2])(**batch)
    assert not out.state.advantages.requires_grad
    out.loss.backward()
    assert entropy.grad is None  # the metric only orders the group: no gradient flows into it
    assert torch.isfinite(batch["logp"].grad).all()


# =========================================================================== BRPO
def brpo_state(group_ids, reference, wins):
    n = len(group_ids)
    return state_of([0.0] * n, group_ids, extras={"pairwise_reference": torch.tensor(reference),
                                                  "pairwise_wins": torch.tensor(wins)})


def test_brpo_hand_values_and_filter():
    # group 0 (4 rows, reference row 1): row 0 wins both orders -> +1, row 2 mixed -> kappa,
    # row 3 loses both -> -1. Sum (kappa = -1) = 1 + 0 - 1 - 1 = -1, |-1| / 4 = .25 <= .6 kept.
    # group 1 (3 rows, reference row 4): rows 5, 6 win both -> sum 2, 2 / 3 = .67 > .6 dropped
    s = brpo_state([0, 0, 0, 0, 1, 1, 1], [False, True, False, False, True, False, False],
                   [[1, 1], [0, 0], [1, 0], [0, 0], [0, 0], [1, 1], [1, 1]])
    out = brpo_advantage()(s)
    assert per_seq(out).tolist() == [1.0, 0.0, -1.0, -1.0, 0.0, 1.0, 1.0]
    assert out.mask.any(-1).tolist() == [True] * 4 + [False] * 3
    assert out.extras["dropped"].tolist() == [False] * 4 + [True] * 3
    assert float(out.metrics["brpo/filtered_frac"]) == pytest.approx(3 / 7)
    # kappa = 0; denominator G - 1: group 1 -> 2 / 2 = 1 > .6 still dropped; no filter keeps all
    out = brpo_advantage(inconsistent=0.0, filter_denominator="others")(s)
    assert per_seq(out).tolist() == [1.0, 0.0, 0.0, -1.0, 0.0, 1.0, 1.0]
    assert brpo_advantage(filter_threshold=None)(s).mask.all()
    # a single verdict per row (shape (batch,)) works too
    s = brpo_state([0, 0], [True, False], [0, 1])
    assert per_seq(brpo_advantage(filter_threshold=None)(s)).tolist() == [0.0, 1.0]


def brpo_loop(group_ids, reference, wins, kappa, tau, denominator):
    values, keep = [], []
    for i in range(len(group_ids)):
        if reference[i]:
            values.append(0.0)
        elif all(wins[i]):
            values.append(1.0)
        elif not any(wins[i]):
            values.append(-1.0)
        else:
            values.append(kappa)
    for g in group_ids:
        members = [j for j, h in enumerate(group_ids) if h == g]
        total = sum(values[j] for j in members)
        size = len(members) - (1 if denominator == "others" else 0)
        keep.append(tau is None or abs(total) / size <= tau)
    return values, keep


@st.composite
def judged(draw):
    sizes = draw(st.lists(st.integers(2, 5), min_size=1, max_size=4))
    group_ids = [g for g, size in enumerate(sizes) for _ in range(size)]
    reference = []
    for size in sizes:
        pick = draw(st.integers(0, size - 1))
        reference += [k == pick for k in range(size)]
    votes = draw(st.integers(1, 3))
    wins = draw(st.lists(st.lists(st.booleans(), min_size=votes, max_size=votes),
                         min_size=len(group_ids), max_size=len(group_ids)))
    return group_ids, reference, wins


@given(judged(), st.sampled_from([-1.0, 0.0]), st.sampled_from([None, 0.0, 0.3, 0.6]),
       st.sampled_from(["group", "others"]))
def test_brpo_matches_loop_reference(data, kappa, tau, denominator):
    group_ids, reference, wins = data
    out = brpo_advantage(kappa, tau, denominator)(brpo_state(group_ids, reference, wins))
    values, keep = brpo_loop(group_ids, reference, wins, kappa, tau, denominator)
    assert per_seq(out).tolist() == values
    assert out.mask.any(-1).tolist() == keep
    assert set(per_seq(out).tolist()) <= {-1.0, 0.0, 1.0, kappa}
    assert not out.advantages.requires_grad


@given(st.integers(2, 6), st.data())
def test_brpo_zero_expectation_over_references_with_a_consistent_antisymmetric_judge(size, data):
    # a judge from a total order (scores, distinct) is antisymmetric and consistent across orders:
    # averaging sum_i A_i over every choice of reference gives 0
    scores = data.draw(st.lists(st.floats(-5, 5), min_size=size, max_size=size, unique=True))
    total = 0.0
    for ref in range(size):
        wins = [[scores[i] > scores[ref]] * 2 for i in range(size)]
        out = brpo_advantage(filter_threshold=None)(brpo_state([0] * size, [i == ref for i in range(size)], wins))
        total += float(per_seq(out).sum())
    assert total == pytest.approx(0.0, abs=1e-12)


def test_brpo_filter_drops_extreme_references():
    # the reference is the worst of 6: all 5 others win -> |5| / 6 > .6, dropped; the median
    # reference (2 wins, 3 losses) -> |-1| / 6 kept
    worst = brpo_state([0] * 6, [True] + [False] * 5, [[0]] + [[1]] * 5)
    middle = brpo_state([0] * 6, [True] + [False] * 5, [[0], [1], [1], [0], [0], [0]])
    assert not brpo_advantage()(worst).mask.any()
    assert brpo_advantage()(middle).mask.all()


def test_pick_references_one_per_group_and_seeded():
    group_ids = torch.tensor([3, 3, 1, 1, 1, 3, 9, 9])
    a = pick_references(group_ids, torch.Generator().manual_seed(0))
    b = pick_references(group_ids, torch.Generator().manual_seed(0))
    assert a.tolist() == b.tolist()
    for gid in (1, 3, 9):
        assert int(a[group_ids == gid].sum()) == 1
    # uniform: over many seeds every member of a group of 3 gets picked
    seen = {int(pick_references(group_ids, torch.Generator().manual_seed(k))[2:5].nonzero()) for k in range(40)}
    assert seen == {0, 1, 2}


# =========================================================================== recipes, bad input
@pytest.mark.parametrize("term", [canon_advantage(), canon_advantage(metric="length", mu=0.5), brpo_advantage()])
@presets()
def test_composes_with_presets(term, preset):
    assert_trains(replace_advantage(preset, term))


def test_gradient_through_the_surrogate():
    # advantages are constants: with reinforce + token_mean, dL/dlogp = -A / N_tokens
    from rlobj import reinforce, token_mean
    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=2))
    out = Objective(canon_advantage(mu=0.3) >> reinforce() >> token_mean())(**batch)
    out.loss.backward()
    expected = torch.where(batch["mask"], -out.state.advantages / batch["mask"].sum(), 0.0)
    torch.testing.assert_close(batch["logp"].grad, expected)


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"canon_advantage.metric: expected 'entropy', 'length' or 'index', got 'ppl'"):
        canon_advantage(metric="ppl")
    with pytest.raises(RlobjInputError, match=r"canon_advantage.mu: expected <= 1.0, got 1.5"):
        canon_advantage(mu=1.5)
    with pytest.raises(RlobjInputError, match=r"canon_advantage.norm_const: expected > 0.0, got 0"):
        canon_advantage(norm_const=0)
    with pytest.raises(RlobjInputError, match=r"canon_advantage.schedule"):
        canon_advantage(schedule="cosine")
    with pytest.raises(RlobjInputError, match=r"needs at least 2 responses per group"):
        canon_advantage()(state_of([1.0, 0.0], [0, 1], entropy=[1.0, 2.0]))
    with pytest.raises(RlobjInputError, match=r"neither an 'entropy' tensor nor a 'vocab'"):
        canon_advantage()(state_of([1.0, 0.0], [0, 0]))
    with pytest.raises(RlobjInputError, match=r"brpo_advantage.filter_denominator"):
        brpo_advantage(filter_denominator="G")
    with pytest.raises(RlobjInputError, match=r"brpo_advantage.inconsistent: expected >= -1.0, got -2"):
        brpo_advantage(inconsistent=-2)
    with pytest.raises(RlobjInputError, match=r"brpo_advantage reads 'extras:pairwise_reference'"):
        brpo_advantage()(state_of([0.0, 0.0], [0, 0]))
    with pytest.raises(RlobjInputError, match=r"exactly one reference per group, got 2 in group 0"):
        brpo_advantage()(brpo_state([0, 0], [True, True], [1, 0]))
    with pytest.raises(RlobjInputError, match=r"expected a bool tensor"):
        brpo_advantage()(state_of([0.0, 0.0], [0, 0], extras={"pairwise_reference": torch.tensor([1, 0]),
                                                                "pairwise_wins": torch.tensor([0, 1])}))
    with pytest.raises(RlobjInputError, match=r"expected bool or 0/1 verdicts"):
        brpo_advantage()(brpo_state([0, 0], [True, False], [0.0, 0.5]))
    with pytest.raises(RlobjInputError, match=r"expected shape \(batch,\) or \(batch, V\)"):
        brpo_advantage()(brpo_state([0, 0], [True, False], [[[1]], [[0]]]))


def test_canon_all_permutations_of_a_small_group_match_the_loop():
    # exhaustive check on one group of 4 with distinct entropies
    rewards = [1.0, 0.0, 0.5, 1.0]
    for perm in itertools.permutations([0.1, 0.2, 0.3, 0.4]):
        s = state_of(rewards, [0, 0, 0, 0], entropy=list(perm))
        torch.testing.assert_close(per_seq(canon_advantage(mu=0.7, alpha=1.5)(s)),
                                   torch.tensor(canon_loop(rewards, [0] * 4, perm, 0.7, 1.5, 0.0, 1.0), dtype=F64))
