"""Co-Reward, AEPO, CRF and GCPO (rlobj/terms/rewards/outcome.py): hand values with the arithmetic in
comments, plain-loop references on Hypothesis inputs, properties from each paper's math, detached
outputs, recipes with grpo / dr_grpo / dapo, bad input."""

import math

import pytest
import torch
from batches import assert_trains, presets
from hypothesis import given
from hypothesis import strategies as st
from terms.rewards._helpers import F64, state_of

from rlobj import dapo, dr_grpo, group_zscore, grpo
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.rewards import (
    aepo_reward,
    co_reward,
    conciseness_reward,
    exploration_accuracy,
    first_hit_rank,
    gcpo_reward,
    majority_answer,
)


@pytest.mark.parametrize("make,preset", [(m, p) for m in (co_reward, aepo_reward) for p in (grpo, dr_grpo, dapo)])
def test_composes_before_presets(make, preset):
    out = assert_trains(make() >> preset)
    assert not out.state.rewards.requires_grad


# =========================================================================== Co-Reward
def test_majority_answer_ties_and_empty():
    assert majority_answer([2, 1, 1, 2, 3]) == 2  # 2 and 1 tie (2 votes each): 2 was seen first
    assert majority_answer([-1, 1, -1, -1]) == 1  # missing answers do not vote
    assert majority_answer([-1, -1]) == -1
    assert majority_answer([]) == -1


def co_state(answers, group_ids, partners):
    return state_of([0.0] * len(answers), group_ids, extras={
        "answer_ids": torch.tensor(answers), "partner_group": torch.tensor(partners)})


def test_co_reward_hand_values():
    # group 0 = view x (rows 0-2), group 1 = view x' (rows 3-5)
    # votes on x: [5, 5, 7] -> label 5; votes on x': [7, 7, -1] -> label 7
    # x is scored against x' (label 7): rows 0, 1 -> 0; row 2 (7) -> 1
    # x' is scored against x (label 5): none of 7, 7, -1 -> 0
    out = co_reward()(co_state([5, 5, 7, 7, 7, -1], [0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0]))
    assert out.rewards.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    # a partner with no extracted answer gives no label -> 0 reward; an empty answer never scores
    out = co_reward()(co_state([3, -1, -1, -1], [0, 0, 1, 1], [1, 1, 0, 0]))
    assert out.rewards.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert float(out.metrics["co_reward/labelled_frac"]) == 0.5  # rows 2, 3 have a label (3)


@st.composite
def co_inputs(draw):
    n_pairs = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 4), min_size=2 * n_pairs, max_size=2 * n_pairs))
    group_ids = [g for g, size in enumerate(sizes) for _ in range(size)]
    partners = [g ^ 1 for g in group_ids]
    answers = draw(st.lists(st.integers(-1, 3), min_size=len(group_ids), max_size=len(group_ids)))
    order = draw(st.permutations(range(len(group_ids))))
    return [answers[i] for i in order], [group_ids[i] for i in order], [partners[i] for i in order]


def co_loop(answers, group_ids, partners):
    rewards = []
    for i in range(len(answers)):
        votes = {}
        for j in range(len(answers)):  # dict keeps first-seen order
            if group_ids[j] == partners[i] and answers[j] != -1:
                votes[answers[j]] = votes.get(answers[j], 0) + 1
        label = max(votes, key=votes.get) if votes else -1  # max returns the first maximal key
        rewards.append(1.0 if answers[i] != -1 and answers[i] == label else 0.0)
    return rewards


@given(co_inputs())
def test_co_reward_matches_loop_reference_and_swaps_with_the_views(data):
    answers, group_ids, partners = data
    out = co_reward()(co_state(answers, group_ids, partners))
    assert out.rewards.tolist() == co_loop(answers, group_ids, partners)
    assert set(out.rewards.tolist()) <= {0.0, 1.0}
    assert all(r == 0.0 for r, a in zip(out.rewards.tolist(), answers) if a == -1)
    # swapping the roles of x and x' (relabel g <-> g ^ 1) leaves each response's reward unchanged
    swapped = co_reward()(co_state(answers, [g ^ 1 for g in group_ids], [p ^ 1 for p in partners]))
    assert swapped.rewards.tolist() == out.rewards.tolist()


def test_co_reward_unanimous_views_give_zero_grpo_advantage():
    # every rollout of both views answers 4 -> all rewards 1 -> GRPO advantage 0 (G5)
    s = co_state([4] * 6, [0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])
    out = (co_reward() >> group_zscore())(s)
    assert out.rewards.tolist() == [1.0] * 6
    assert bool((out.advantages == 0).all())


# =========================================================================== AEPO
def test_aepo_hand_values():
    # N = 1 hit at 1: 1 + 1/sqrt(1) = 2; N = 1 miss: 1 - 1 = 0; N = 4 hit at 1: 1 + 1/2 = 1.5;
    # N = 4 hit at 4: 1 + 1/4 = 1.25; N = 4 miss: 1 - 1/4 = .75; invalid format: -1
    extras = {"candidate_count": torch.tensor([1, 1, 4, 4, 4, 3]),
              "first_hit_rank": torch.tensor([1, 0, 1, 4, 0, 1]),
              "format_valid": torch.tensor([True, True, True, True, True, False])}
    out = aepo_reward()(state_of([0.0] * 6, extras=extras))
    assert out.rewards.tolist() == [2.0, 0.0, 1.5, 1.25, 0.75, -1.0]
    assert exploration_accuracy(torch.tensor([2]), torch.tensor([2])).tolist() == [0.5]  # 1/sqrt(4)
    # first_hit_rank only looks at the first N candidates
    hits = torch.tensor([[0, 1, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]]).bool()
    assert first_hit_rank(hits, torch.tensor([3, 3, 2, 3])).tolist() == [2, 1, 0, 0]


@given(st.integers(1, 12), st.data())
def test_aepo_properties(n, data):
    k = data.draw(st.integers(1, n))
    acc = lambda n, k: float(exploration_accuracy(torch.tensor([n]), torch.tensor([k])))  # noqa: E731
    assert acc(n, k) == pytest.approx(1 / math.sqrt(n * k))  # loop-free formula, by hand
    assert -1.0 <= acc(n, 0) < 0 < acc(n, k) <= 1.0
    assert acc(n + 1, k) < acc(n, k)  # success reward strictly decreasing in N
    if k < n:
        assert acc(n, k + 1) < acc(n, k)  # ... and in k
    assert acc(n + 1, 0) > acc(n, 0)  # the failure penalty shrinks as N grows
    assert acc(n, n) > max(acc(m, 0) for m in range(1, 13))  # any success beats any failure


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 5), st.booleans()), min_size=1, max_size=6))
def test_aepo_matches_loop_reference(rows):
    rows = [(n, min(k, n), ok) for n, k, ok in rows]
    extras = {"candidate_count": torch.tensor([r[0] for r in rows]), "first_hit_rank": torch.tensor([r[1] for r in rows]),
              "format_valid": torch.tensor([r[2] for r in rows])}
    out = aepo_reward(format_reward=0.5, invalid_reward=-2.0)(state_of([0.0] * len(rows), extras=extras))
    expected = [(-2.0 if not ok else 0.5 + (1 / math.sqrt(n * k) if k else -1 / n)) for n, k, ok in rows]
    torch.testing.assert_close(out.rewards, torch.tensor(expected, dtype=F64))


# =========================================================================== CRF
def crf_state(rewards, group_ids, concise):
    return state_of(rewards, group_ids, extras={"conciseness": torch.tensor(concise, dtype=F64)})


def test_crf_hand_values_and_annealing():
    # group 0: rewards 1, 1, 0, 0 -> accuracy .5, d = .5; group 1: 1, 0 -> d = .5 ... use 1, 1 -> d = 0
    # alpha = 1, s = 1: row 0: 1 * (1 + .4 * (1 + .5)) = 1.6; row 1: 1 + 1 * 1.5 = 2.5; rows 2, 3 wrong -> 0
    # group 1 (d = 0): row 4: 1 + .2 * 1 = 1.2; row 5: 1 + .5 = 1.5
    s = crf_state([1.0, 1.0, 0.0, 0.0, 1.0, 1.0], [0, 0, 0, 0, 1, 1], [0.4, 1.0, 0.9, 0.1, 0.2, 0.5])
    out = conciseness_reward()(s.update(key="k"))
    torch.testing.assert_close(out.rewards, torch.tensor([1.6, 2.5, 0.0, 0.0, 1.2, 1.5], dtype=F64))
    assert out.term_state == {"k": 1}
    # annealing over T = 4 steps: at step 2, s = 1 - 2/4 = .5; no difficulty: row 0: 1 + .4 * .5 = 1.2
    later = s.update(key="k", term_state={"k": 2})
    out = conciseness_reward(decay_steps=4, difficulty="none")(later)
    torch.testing.assert_close(out.rewards[:2], torch.tensor([1.2, 1.5], dtype=F64))
    assert out.term_state == {"k": 3}
    # past T the bonus is gone without difficulty
    done = conciseness_reward(decay_steps=4, difficulty="none")(s.update(key="k", term_state={"k": 9}))
    assert done.rewards.tolist() == s.rewards.tolist()


@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0, 0.7]), st.floats(0, 1), st.integers(0, 2)), min_size=1, max_size=8),
       st.floats(0, 2), st.floats(0, 2), st.integers(0, 6), st.integers(0, 8))
def test_crf_matches_loop_reference_and_properties(rows, alpha, s0, decay, step):
    rewards, concise, groups = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    s = crf_state(rewards, groups, concise).update(key="k", term_state={"k": step})
    out = conciseness_reward(alpha, s0, decay)(s)
    anneal = s0 if decay == 0 else s0 * max(0.0, 1 - step / decay)
    for i, (r, c, g) in enumerate(rows):
        mates = [rr for rr, _, gg in rows if gg == g]
        d = 1 - sum(rr > 0.5 for rr in mates) / len(mates)
        expected = r * (1 + alpha * c * (anneal + d))
        assert float(out.rewards[i]) == pytest.approx(expected, abs=1e-9)
        if r == 0.0:
            assert float(out.rewards[i]) == 0.0  # no conciseness pay without correctness
        assert float(out.rewards[i]) >= r  # alpha, c, s, d >= 0
    assert conciseness_reward(alpha=0.0)(s).rewards.tolist() == rewards


def test_crf_keeps_all_wrong_groups_at_zero_advantage():
    s = crf_state([0.0, 0.0, 0.0], [0, 0, 0], [0.1, 0.5, 1.0])
    out = (conciseness_reward() >> group_zscore())(s)
    assert bool((out.advantages == 0).all())


def test_crf_monotone_in_conciseness():
    low = conciseness_reward()(crf_state([1.0, 0.0], [0, 0], [0.3, 0.3])).rewards[0]
    high = conciseness_reward()(crf_state([1.0, 0.0], [0, 0], [0.8, 0.3])).rewards[0]
    assert float(high) > float(low)


# =========================================================================== GCPO
def gcpo_state(rewards, group_ids, aux, lengths=None, width=4):
    return state_of(rewards, group_ids, lengths=lengths, width=width, extras={"uses_aux": torch.tensor(aux)})


def test_gcpo_hand_values():
    # group 0: aux rows 0, 1 (correct, correct) acc 1; no-aux rows 2, 3 (correct, wrong) acc .5:
    #   gap .5 > 0 -> M = +1: aux rows get +1
    # group 1: aux row 4 wrong (acc 0), no-aux row 5 correct (acc 1): gap -1 -> M = -1: row 4 gets -1
    # group 2: all aux -> M = 0
    # length reward (L = 4, coef .5): correct rows get .5 * min(len / 4, 1); lengths 4, 2, 4, 4, 4, 1, 4
    s = gcpo_state([1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0], [0, 0, 0, 0, 1, 1, 2],
                   [True, True, False, False, True, False, True], lengths=[4, 2, 4, 4, 4, 1, 4])
    out = gcpo_reward(length_coef=0.5, length_target=4)(s)
    # row 0: 1 + 1 + .5 = 2.5; row 1: 1 + 1 + .5 * .5 = 2.25; row 2: 1 + .5 = 1.5; row 3: 0;
    # row 4: 0 - 1 = -1; row 5: 1 + .5 * .25 = 1.125; row 6: 1 + 0 + .5 = 1.5
    torch.testing.assert_close(out.rewards, torch.tensor([2.5, 2.25, 1.5, 0.0, -1.0, 1.125, 1.5], dtype=F64))
    # eps = .6: group 0's gap .5 is inside the band -> M = 0; group 1's -1 is not
    out = gcpo_reward(eps=0.6, length_coef=0.0)(s)
    assert out.rewards.tolist() == [1.0, 1.0, 1.0, 0.0, -1.0, 1.0, 1.0]


@st.composite
def gcpo_inputs(draw):
    n = draw(st.integers(1, 8))
    rewards = draw(st.lists(st.sampled_from([0.0, 1.0, 0.3, 0.8]), min_size=n, max_size=n))
    groups = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    aux = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    return rewards, groups, aux, lengths


def gcpo_sign(rewards, groups, aux, g, eps):
    with_aux = [r > 0.5 for r, gg, a in zip(rewards, groups, aux) if gg == g and a]
    without = [r > 0.5 for r, gg, a in zip(rewards, groups, aux) if gg == g and not a]
    if not with_aux or not without:
        return 0.0
    gap = sum(with_aux) / len(with_aux) - sum(without) / len(without)
    return 1.0 if gap > eps else (-1.0 if gap < -eps else 0.0)


@given(gcpo_inputs(), st.sampled_from([0.0, 0.25, 0.5]), st.floats(0, 2), st.sampled_from([1.0, 3.0]))
def test_gcpo_matches_loop_reference_and_properties(data, eps, length_coef, target):
    rewards, groups, aux, lengths = data
    s = gcpo_state(rewards, groups, aux, lengths=lengths, width=6)
    term = gcpo_reward(eps=eps, length_coef=length_coef, length_target=target)
    out = term(s)
    for i in range(len(rewards)):
        sign = gcpo_sign(rewards, groups, aux, groups[i], eps)
        assert sign in (-1.0, 0.0, 1.0)
        # antisymmetry: swapping the roles of aux / no-aux accuracy flips M
        flipped = gcpo_sign(rewards, groups, [not a for a in aux], groups[i], eps)
        assert flipped == -sign
        bonus = length_coef * min(lengths[i] / target, 1.0) * (rewards[i] > 0.5)
        expected = rewards[i] + (sign if aux[i] else 0.0) + bonus
        assert float(out.rewards[i]) == pytest.approx(expected, abs=1e-9)
        if not aux[i]:  # responses without a construction receive no aux term
            assert float(out.rewards[i]) == pytest.approx(rewards[i] + bonus, abs=1e-9)


def test_gcpo_with_zero_mask_is_grpo_plus_length_reward():
    # both subgroups equally accurate -> M = 0 -> only the length reward is added
    s = gcpo_state([1.0, 0.0, 1.0, 0.0], [0, 0, 0, 0], [True, True, False, False], lengths=[2, 4, 4, 1])
    out = gcpo_reward(length_target=4)(s)
    assert out.rewards.tolist() == [1.5, 0.0, 2.0, 0.0]


# =========================================================================== recipes, bad input
@pytest.mark.parametrize("make", [conciseness_reward, gcpo_reward])
@presets()
def test_second_batch_composes_before_presets(make, preset):
    out = assert_trains(make() >> preset, seed=4)
    assert not out.state.rewards.requires_grad


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"expected one existing group id per group, got \[5\] for group 0"):
        co_reward()(co_state([1, 1], [0, 0], [5, 5]))
    with pytest.raises(RlobjInputError, match=r"expected one existing group id per group, got \[0, 1\]"):
        co_reward()(co_state([1, 1, 2], [0, 0, 1], [0, 1, 0]))
    with pytest.raises(RlobjInputError, match=r"extras\['answer_ids'\]: co_reward expected an integer tensor"):
        co_reward()(state_of([0.0], extras={"answer_ids": torch.tensor([1.0]), "partner_group": torch.tensor([0])}))
    with pytest.raises(RlobjInputError, match=r"expected ids >= 0 or -1"):
        co_reward()(co_state([-3], [0], [0]))
    extras = {"candidate_count": torch.tensor([2]), "first_hit_rank": torch.tensor([3]), "format_valid": torch.tensor([True])}
    with pytest.raises(RlobjInputError, match=r"first_hit_rank'\]: expected 0 <= k <= N, got k=\[3\] for N=\[2\]"):
        aepo_reward()(state_of([0.0], extras=extras))
    with pytest.raises(RlobjInputError, match=r"candidate_count'\]: expected N >= 1"):
        aepo_reward()(state_of([0.0], extras={**extras, "candidate_count": torch.tensor([0]), "first_hit_rank": torch.tensor([0])}))
    with pytest.raises(RlobjInputError, match=r"aepo_reward reads 'extras:format_valid'"):
        aepo_reward()(state_of([0.0], extras={k: v for k, v in extras.items() if k != "format_valid"}))
    with pytest.raises(RlobjInputError, match=r"conciseness'\]: conciseness_reward expected values in \[0, 1\], got \[1.5\]"):
        conciseness_reward()(crf_state([1.0], [0], [1.5]))
    with pytest.raises(RlobjInputError, match=r"conciseness_reward.difficulty"):
        conciseness_reward(difficulty="hard")
    with pytest.raises(RlobjInputError, match=r"conciseness_reward.decay_steps: expected >= 0, got -1"):
        conciseness_reward(decay_steps=-1)
    with pytest.raises(RlobjInputError, match=r"gcpo_reward.length_target: expected > 0.0, got 0"):
        gcpo_reward(length_target=0)
    with pytest.raises(RlobjInputError, match=r"uses_aux'\]: gcpo_reward expected a bool tensor"):
        gcpo_reward()(state_of([0.0], extras={"uses_aux": torch.tensor([1])}))
