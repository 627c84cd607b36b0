"""RiskPO mixed VaR (rlobj/terms/advantages/risk.py): hand values, a plain-loop reference on
Hypothesis inputs (every quantile mode and credit rule, with and without a stored tracker),
properties of the MVaR scores and the quantile tracker, term state across steps, gradient, recipes,
bad input."""

import math

import pytest
import torch
from batches import leaf, make_batch, presets
from hypothesis import given
from hypothesis import strategies as st

from rlobj import (
    Objective,
    group_mean_baseline,
    group_zscore,
    reinforce,
    seq_mean_token_sum,
)
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import QUANTILE_LEVELS, mvar_advantage, mvar_scores, update_quantiles

F64 = torch.float64


def state_of(rewards, group_ids, term_state=None):
    n = len(rewards)
    return State.from_batch(logp=torch.full((n, 1), -0.5, dtype=F64), mask=torch.ones(n, 1, dtype=torch.bool),
                            rewards=torch.tensor(rewards, dtype=F64), group_ids=torch.tensor(group_ids),
                            term_state=term_state or {}).update(key="k")


def advantages_of(term, rewards, group_ids, tracker=None):
    out = term(state_of(rewards, group_ids, {"k": tracker} if tracker is not None else None))
    return out.advantages[:, 0], out.term_state.get("k")


# --------------------------------------------------------------------------- loop reference
def quantile(xs, level):
    xs = sorted(xs)
    pos = level * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def loop_reference(rewards, group_ids, term, tracker):
    order = []
    for g in group_ids:
        if g not in order:
            order.append(g)
    rows_of = {g: [i for i, h in enumerate(group_ids) if h == g] for g in order}
    adv = [0.0] * len(rewards)
    all_scores = []
    for start in range(0, len(order), term.bundle_size):
        bundle = order[start:start + term.bundle_size]
        n_papers = min(len(rows_of[g]) for g in bundle)
        papers = [[rows_of[g][j] for g in bundle] for j in range(n_papers)]
        scores = [sum(rewards[i] for i in paper) for paper in papers]
        all_scores += scores
        batch_a, batch_b = quantile(scores, term.alpha), quantile(scores, term.beta)
        if tracker is None or term.quantiles == "batch":
            a, b = batch_a, batch_b
        else:
            ia = min(range(19), key=lambda k: abs(QUANTILE_LEVELS[k] - term.alpha))
            ib = min(range(19), key=lambda k: abs(QUANTILE_LEVELS[k] - term.beta))
            a, b = tracker[ia], tracker[ib]
            if term.quantiles == "mix":
                a, b = (a + batch_a) / 2, (b + batch_b) / 2
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((x - mean) ** 2 for x in scores) / (len(scores) - 1)) if len(scores) > 1 else 0.0
        if max(scores) == min(scores):
            std = 0.0
        for paper, x in zip(papers, scores):
            g_r = max(x - a, 0) - max(x - b, 0) + ((a - b) if term.natural_baseline else 0.0)
            g_r /= term.beta - term.alpha
            g_c = -max(a - x, 0) / term.alpha
            value = (term.w_mix * g_c + g_r) / (term.w_mix + 1)
            if term.normalize_std:
                value = value / (std + 1e-6) if std > 0 else 0.0
            centred = []
            for i in paper:
                mine = [rewards[j] for j in rows_of[group_ids[i]]]
                mu = sum(mine) / len(mine)
                sigma = math.sqrt(sum((v - mu) ** 2 for v in mine) / (len(mine) - 1))
                centred.append(rewards[i] - mu)
                if term.credit == "uniform":
                    adv[i] = value
                elif term.credit == "score":
                    adv[i] = value * (0.5 if rewards[i] > 0.5 else 1.5)
                elif term.credit == "std":
                    adv[i] = value / (sigma if sigma >= 1e-3 else 1.0)
            if term.credit == "sum-mean":
                total = sum(centred)
                for i, c in zip(paper, centred):
                    adv[i] = value * c / total if abs(total) > 1e-6 else value / len(paper)
    if term.quantiles == "batch":
        new = None
    elif tracker is None:
        new = [quantile(all_scores, lv) for lv in QUANTILE_LEVELS]
    else:
        new = [q + term.lr_q * (lv - sum(x < q for x in all_scores) / len(all_scores))
               for q, lv in zip(tracker, QUANTILE_LEVELS)]
    return adv, new


@st.composite
def inputs(draw):
    n_groups = draw(st.integers(1, 5))
    sizes = draw(st.lists(st.integers(2, 4), min_size=n_groups, max_size=n_groups))
    ids = draw(st.lists(st.integers(0, 50), min_size=n_groups, max_size=n_groups, unique=True))
    group_ids = [g for g, n in zip(ids, sizes) for _ in range(n)]
    order = draw(st.permutations(range(len(group_ids))))
    group_ids = [group_ids[i] for i in order]
    values = draw(st.sampled_from([st.sampled_from([0.0, 1.0]), st.integers(-4, 8).map(lambda k: k / 4)]))
    rewards = draw(st.lists(values, min_size=len(group_ids), max_size=len(group_ids)))
    alpha = draw(st.sampled_from([0.1, 0.2, 0.3]))
    term = mvar_advantage(alpha=alpha, beta=draw(st.sampled_from([0.6, 0.8, 0.9])),
                          w_mix=draw(st.sampled_from([0.0, 1.5, 4.0])), bundle_size=draw(st.integers(1, 3)),
                          quantiles=draw(st.sampled_from(["track", "batch", "mix"])), lr_q=0.1,
                          natural_baseline=draw(st.booleans()), normalize_std=draw(st.booleans()),
                          credit=draw(st.sampled_from(["sum-mean", "std", "uniform", "score"])))
    tracker = None
    if draw(st.booleans()):
        tracker = tuple(sorted(draw(st.lists(st.integers(0, 12).map(lambda k: k / 4), min_size=19, max_size=19))))
    return rewards, group_ids, term, tracker


@given(inputs())
def test_matches_loop_reference(data):
    rewards, group_ids, term, tracker = data
    adv, new = advantages_of(term, rewards, group_ids, tracker)
    expected, expected_state = loop_reference(rewards, group_ids, term, tracker)
    torch.testing.assert_close(adv, torch.tensor(expected, dtype=F64), atol=1e-9, rtol=1e-9)
    if expected_state is None:
        assert new is None or term.quantiles == "batch"
    else:
        torch.testing.assert_close(torch.tensor(new, dtype=F64), torch.tensor(expected_state, dtype=F64))


# --------------------------------------------------------------------------- hand values
def test_hand_values():
    # q0 rewards [1, 0, 1], q1 [1, 1, 0], B = 2: papers (rows 0,3), (1,4), (2,5) score X = 2, 1, 1.
    # batch quantiles of [1, 1, 2]: a = q_0.2 = 1 (pos 0.4), b = q_0.8 = 1 + 0.6 * 1 = 1.6.
    # g_R = ((X-1)+ - (X-1.6)+) / 0.6 = [1, 0, 0]; g_C = 0; A = g_R / 2.5 = [0.4, 0, 0];
    # std(X) = sqrt(1/3) -> A = [0.4 / 0.577351, 0, 0] = [0.692819, 0, 0].
    rewards, groups = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0], [0, 0, 0, 1, 1, 1]
    top = 0.4 / (math.sqrt(1 / 3) + 1e-6)
    adv, _ = advantages_of(mvar_advantage(bundle_size=2, quantiles="batch", credit="uniform"), rewards, groups)
    torch.testing.assert_close(adv, torch.tensor([top, 0, 0, top, 0, 0], dtype=F64))
    # sum-mean: paper 0 centred rewards (1 - 2/3, 1 - 2/3) -> half each
    adv, _ = advantages_of(mvar_advantage(bundle_size=2, quantiles="batch"), rewards, groups)
    torch.testing.assert_close(adv, torch.tensor([top / 2, 0, 0, top / 2, 0, 0], dtype=F64))
    # std credit: sigma_q = std([1, 0, 1]) = sqrt(1/3) for both questions
    adv, _ = advantages_of(mvar_advantage(bundle_size=2, quantiles="batch", credit="std"), rewards, groups)
    torch.testing.assert_close(adv[0], torch.tensor(top / math.sqrt(1 / 3), dtype=F64))
    # tracked quantiles a = 1.5 (level 0.2), b = 2 (level 0.8), no std: X = 2 -> g_R = 0.5 / 0.6,
    # X = 1 -> g_C = -0.5 / 0.2 = -2.5; A = (1.5 g_C + g_R) / 2.5 = [1/3, -1.5, -1.5]
    tracker = tuple([1.5] * 10 + [2.0] * 9)
    term = mvar_advantage(bundle_size=2, normalize_std=False, credit="uniform", quantiles="track")
    adv, new = advantages_of(term, rewards, groups, tracker)
    torch.testing.assert_close(adv, torch.tensor([1 / 3, -1.5, -1.5, 1 / 3, -1.5, -1.5], dtype=F64))
    # tracker step: F(1.5) = 2/3 -> q += 0.1 (level - 2/3); F(2) = 2/3 likewise
    assert new[3] == pytest.approx(1.5 + 0.1 * (0.2 - 2 / 3))
    assert new[15] == pytest.approx(2.0 + 0.1 * (0.8 - 2 / 3))


def test_tracker_is_returned_state_and_used_on_the_next_step():
    term = mvar_advantage(bundle_size=2, credit="uniform", quantiles="track")
    objective = Objective(term >> reinforce())
    fields = dict(logp=torch.full((6, 1), -0.5), mask=torch.ones(6, 1, dtype=torch.bool),
                  rewards=torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.0]), group_ids=torch.tensor([0, 0, 0, 1, 1, 1]))
    first = objective(**fields)
    (tracker,) = first.term_state.values()
    assert len(tracker) == 19 and list(tracker) == sorted(tracker)
    # the first step used per-bundle quantiles; the second uses the stored tracker (here a = 1, b = 1.6
    # again from the batch quantiles of all scores), then updates it
    second = objective(**fields, term_state=first.term_state)
    (after,) = second.term_state.values()
    assert after != tracker
    batch_only = Objective(mvar_advantage(bundle_size=2, credit="uniform", quantiles="batch") >> reinforce())(**fields)
    assert batch_only.term_state == {}
    torch.testing.assert_close(first.state.advantages, batch_only.state.advantages)


# --------------------------------------------------------------------------- properties
SCORES = st.lists(st.floats(0, 5), min_size=2, max_size=12)


@given(SCORES, st.floats(0, 5), st.floats(0, 5), st.sampled_from([(0.2, 0.8), (0.1, 0.9)]), st.booleans())
def test_mvar_score_shapes(scores, q1, q2, levels, natural):
    alpha, beta = levels
    a, b = torch.tensor(min(q1, q2), dtype=F64), torch.tensor(max(q1, q2), dtype=F64)
    x = torch.tensor(sorted(scores), dtype=F64)
    g_r = mvar_scores(x, a, b, alpha, beta, 0.0, natural)      # w = 0: range VaR only
    g_c = 2 * mvar_scores(x, a, b, alpha, beta, 1.0, natural) - g_r   # w = 1: (g_C + g_R) / 2
    assert bool((g_r.diff() >= -1e-12).all()) and bool((g_c.diff() >= -1e-9).all())   # non-decreasing
    assert bool((g_r <= 1e-12).all()) if natural else bool((g_r >= -1e-12).all())
    clipped = torch.clamp(x, a, b)
    torch.testing.assert_close((g_r - g_r[0]) * (beta - alpha), clipped - clipped[0])  # clip identity
    torch.testing.assert_close(g_c, -torch.clamp(a - x, min=0) / alpha)  # CVaR part, zero above a
    # zero above a (g_c is recovered as 2 * mvar(w=1) - g_r: exact up to rounding, e.g. -5e-324)
    torch.testing.assert_close(g_c[x >= a], torch.zeros_like(g_c[x >= a]), atol=1e-12, rtol=0)
    # as w grows, MVaR tends to the CVaR part
    big = mvar_scores(x, a, b, alpha, beta, 1e8, natural)
    torch.testing.assert_close(big, g_c, atol=1e-6 * (1 + float(g_r.abs().max())), rtol=1e-6)


def test_tracker_converges_to_the_true_quantiles():
    g = torch.Generator().manual_seed(0)
    values = torch.full((19,), 2.5, dtype=F64)
    for _ in range(3000):
        values = update_quantiles(values, 5 * torch.rand(64, generator=g, dtype=F64), lr=0.05)
    truth = 5 * torch.tensor(QUANTILE_LEVELS, dtype=F64)
    assert float((values - truth).abs().max()) < 0.15


@given(inputs())
def test_sum_mean_credit_conserves_the_paper_advantage(data):
    rewards, group_ids, term, tracker = data
    import dataclasses
    uniform = dataclasses.replace(term, credit="uniform")
    summed = dataclasses.replace(term, credit="sum-mean")
    a_u, _ = advantages_of(uniform, rewards, group_ids, tracker)
    a_s, _ = advantages_of(summed, rewards, group_ids, tracker)
    # each paper's shares add up to the paper's advantage; count the members of every paper
    order = list(dict.fromkeys(group_ids))
    rows_of = {g: [i for i, h in enumerate(group_ids) if h == g] for g in order}
    for start in range(0, len(order), term.bundle_size):
        bundle = order[start:start + term.bundle_size]
        for j in range(min(len(rows_of[g]) for g in bundle)):
            paper = [rows_of[g][j] for g in bundle]
            assert float(a_s[paper].sum()) == pytest.approx(float(a_u[paper[0]]), abs=1e-9)
            assert len({float(a_u[i]) for i in paper}) == 1


@given(inputs())
def test_bundle_of_one_question_scores_each_rollout_alone(data):
    rewards, group_ids, term, _ = data
    import dataclasses
    term = dataclasses.replace(term, bundle_size=1, quantiles="batch", credit="uniform", normalize_std=False)
    adv, _ = advantages_of(term, rewards, group_ids)
    for g in set(group_ids):
        rows = [i for i, h in enumerate(group_ids) if h == g]
        x = torch.tensor([rewards[i] for i in rows], dtype=F64)
        a, b = torch.quantile(x, torch.tensor([term.alpha, term.beta], dtype=F64))
        expected = mvar_scores(x, a, b, term.alpha, term.beta, term.w_mix, term.natural_baseline)
        torch.testing.assert_close(adv[rows], expected)


def test_extra_rollouts_beyond_the_shortest_question_get_zero():
    adv, _ = advantages_of(mvar_advantage(bundle_size=2, quantiles="batch", credit="uniform"),
                           [1.0, 0.0, 1.0, 1.0, 0.0], [0, 0, 0, 1, 1])
    assert float(adv[2]) == 0.0  # q0's third rollout has no partner in q1


def test_gradient_through_reinforce():
    rewards, groups = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0], [0, 0, 0, 1, 1, 1]
    logp = torch.full((6, 1), -0.5, dtype=F64, requires_grad=True)
    out = Objective(mvar_advantage(bundle_size=2, quantiles="batch") >> reinforce() >> seq_mean_token_sum())(
        logp=logp, mask=torch.ones(6, 1, dtype=torch.bool), rewards=torch.tensor(rewards, dtype=F64),
        group_ids=torch.tensor(groups))
    out.loss.backward()
    torch.testing.assert_close(logp.grad, -out.state.advantages / 6)


# --------------------------------------------------------------------------- recipes
@presets()
def test_composes_with_presets(preset):
    advantage = group_zscore if any(isinstance(t, group_zscore) for t in preset.terms) else group_mean_baseline
    recipe = preset.replace(advantage, mvar_advantage(bundle_size=2, quantiles="track"))
    batch = leaf(make_batch([4, 4, 4], [4, 2, 5, 3, 1, 4, 6, 2, 3, 3, 2, 1], seed=3))
    out = Objective(recipe)(**batch)
    assert torch.isfinite(out.loss) and len(out.term_state) == 1
    out.loss.backward()
    assert torch.isfinite(batch["logp"].grad).all()
    again = Objective(recipe)(**leaf(batch), term_state=out.term_state)
    assert torch.isfinite(again.loss)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0.8, "beta": 0.2}, r"expected 0 < alpha < beta < 1, got alpha=0.8, beta=0.2"),
    ({"alpha": 0.0}, r"mvar_advantage.alpha: expected > 0.0"),
    ({"beta": 1.5}, r"mvar_advantage.beta: expected <= 1.0, got 1.5"),
    ({"bundle_size": 0}, r"bundle_size: expected >= 1, got 0"),
    ({"w_mix": -1.0}, r"w_mix: expected >= 0.0"),
    ({"quantiles": "ema"}, r"quantiles: expected 'track', 'batch' or 'mix', got 'ema'"),
    ({"credit": "equal"}, r"credit: expected 'sum-mean'"),
])
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(RlobjInputError, match=match):
        mvar_advantage(**kwargs)


def test_bad_inputs():
    with pytest.raises(RlobjInputError, match=r"group_ids: mvar_advantage needs at least 2 responses per group"):
        mvar_advantage()(state_of([1.0, 0.0, 1.0], [0, 0, 1]))
    s = State.from_batch(logp=torch.zeros(2, 1), mask=torch.ones(2, 1, dtype=torch.bool), rewards=torch.ones(2))
    with pytest.raises(RlobjInputError, match=r"mvar_advantage reads 'group_ids'"):
        mvar_advantage()(s)
