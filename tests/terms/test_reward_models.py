"""Reward-model terms (rlobj/terms/reward_models.py): hand values with the arithmetic in comments,
plain-loop references on Hypothesis inputs, properties from each paper's math, detached
outputs, recipes with grpo / dr_grpo / dapo, bad input.
"""

import math
import os

os.environ.setdefault("RLOBJ_TYPECHECK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from batches import leaf, make_batch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rlobj import Objective, batch_whiten, dapo, dr_grpo, group_zscore, grpo  # noqa: E402
from rlobj.algebra.state import State  # noqa: E402
from rlobj.ops.errors import RlobjInputError  # noqa: E402
from rlobj.terms.reward_models import (  # noqa: E402
    aepo_reward,
    co_reward,
    exploration_accuracy,
    first_hit_rank,
    majority_answer,
    ppr_renorm,
)

F64 = torch.float64
SETTINGS = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def state_of(rewards, group_ids=None, lengths=None, width=4, extras=None, **fields):
    n = len(rewards)
    lengths = lengths or [width] * n
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return State.from_batch(logp=torch.full((n, width), -0.5, dtype=F64), mask=mask,
                            rewards=torch.tensor(rewards, dtype=F64),
                            group_ids=torch.tensor(group_ids if group_ids is not None else [0] * n),
                            extras=extras or {}, **fields)


@pytest.mark.parametrize("make", [ppr_renorm, co_reward, aepo_reward])
@pytest.mark.parametrize("preset", [grpo, dr_grpo, dapo], ids=["grpo", "dr_grpo", "dapo"])
def test_composes_before_presets(make, preset):
    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=3))
    out = Objective(make() >> preset)(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(batch["logp"].grad).all()
    assert not out.state.rewards.requires_grad


# =========================================================================== PPR ReNorm
def ppr_state(outcome, process, ends, lengths=None, width=4, token_rewards=None):
    extras = {"step_ends": torch.tensor(ends), "process_rewards": torch.tensor(process, dtype=F64)}
    fields = {"token_rewards": torch.tensor(token_rewards, dtype=F64)} if token_rewards is not None else {}
    return state_of(outcome, lengths=lengths, width=width, extras=extras, **fields)


def test_ppr_hand_values():
    # row 0 correct (r^o = 1), steps end at t = 1 (r^p = .8) and t = 3 (r^p = .2):
    #   .8 + 1 - 1 = .8, .2 + 1 - 1 = .2 (both >= 0)
    # row 1 wrong (r^o = 0), length 3, steps end at t = 0 (r^p = .9) and t = 2 (r^p = 0):
    #   .9 - 1 = -.1, 0 - 1 = -1 (both <= 0); t = 3 is padding: its end flag is ignored
    s = ppr_state([1.0, 0.0], [[0.0, 0.8, 0.5, 0.2], [0.9, 0.4, 0.0, 0.7]],
                  [[False, True, False, True], [True, False, True, True]], lengths=[4, 3])
    out = ppr_renorm()(s)
    torch.testing.assert_close(out.token_rewards, torch.tensor([[0, 0.8, 0, 0.2], [-0.1, 0, -1, 0]], dtype=F64))
    assert out.rewards.tolist() == [0.0, 0.0]
    assert float(out.metrics["ppr/steps"]) == 2.0
    # existing token rewards are kept (e.g. a KL folded into the reward before it)
    s = ppr_state([1.0], [[1.0, 1.0]], [[False, True]], width=2, token_rewards=[[-0.1, -0.2]])
    torch.testing.assert_close(ppr_renorm()(s).token_rewards, torch.tensor([[-0.1, 0.8]], dtype=F64))


@st.composite
def ppr_inputs(draw):
    n, width = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(1, width), min_size=n, max_size=n))
    outcome = draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)), min_size=n, max_size=n))
    process = draw(st.lists(st.lists(st.floats(0, 1), min_size=width, max_size=width), min_size=n, max_size=n))
    ends = draw(st.lists(st.lists(st.booleans(), min_size=width, max_size=width), min_size=n, max_size=n))
    for row, length in zip(ends, lengths):
        row[length - 1] = True  # the final step ends at the last token
    return outcome, process, ends, lengths, width


@SETTINGS
@given(ppr_inputs())
def test_ppr_matches_loop_reference_and_properties(data):
    outcome, process, ends, lengths, width = data
    out = ppr_renorm()(ppr_state(outcome, process, ends, lengths, width))
    for i in range(len(outcome)):
        steps = []
        for t in range(width):
            expected = (process[i][t] - 0.5) + (outcome[i] - 0.5) if (t < lengths[i] and ends[i][t]) else 0.0
            assert float(out.token_rewards[i, t]) == pytest.approx(expected, abs=1e-12)
            if t < lengths[i] and ends[i][t]:
                steps.append((process[i][t], float(out.token_rewards[i, t])))
        for _p, r in steps:
            assert -1.0 <= r <= 1.0
            if outcome[i] == 1.0:
                assert r >= 0.0  # sign consistency
            if outcome[i] == 0.0:
                assert r <= 0.0
        # the order of steps by process score is kept within the trajectory
        for (p1, r1) in steps:
            for (p2, r2) in steps:
                if p1 < p2:
                    assert r1 <= r2
    assert not out.token_rewards.requires_grad


def test_ppr_extremes():
    # perfectly scored correct trajectory -> +1 per step; zero-scored wrong one -> -1 per step
    s = ppr_state([1.0, 0.0], [[1.0, 1.0], [0.0, 0.0]], [[True, True], [True, True]], width=2)
    assert ppr_renorm()(s).token_rewards.tolist() == [[1.0, 1.0], [-1.0, -1.0]]


def test_ppr_returns_with_batch_whiten():
    # one row, steps at t = 0 (r^p = 1) and t = 2 (r^p = .5), outcome 1: step rewards 1 and .5;
    # returns to go (gamma = 1): [1.5, .5, .5]; batch_whiten sees no outcome on the last token
    s = ppr_state([1.0], [[1.0, 0.0, 0.5]], [[True, False, True]], width=3)
    out = (ppr_renorm() >> batch_whiten())(s)
    returns = torch.tensor([1.5, 0.5, 0.5], dtype=F64)
    expected = (returns - returns.mean()) / torch.sqrt(returns.var(unbiased=False) + 1e-8)
    torch.testing.assert_close(out.advantages[0], expected)


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


@SETTINGS
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


@SETTINGS
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


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 5), st.booleans()), min_size=1, max_size=6))
def test_aepo_matches_loop_reference(rows):
    rows = [(n, min(k, n), ok) for n, k, ok in rows]
    extras = {"candidate_count": torch.tensor([r[0] for r in rows]), "first_hit_rank": torch.tensor([r[1] for r in rows]),
              "format_valid": torch.tensor([r[2] for r in rows])}
    out = aepo_reward(format_reward=0.5, invalid_reward=-2.0)(state_of([0.0] * len(rows), extras=extras))
    expected = [(-2.0 if not ok else 0.5 + (1 / math.sqrt(n * k) if k else -1 / n)) for n, k, ok in rows]
    torch.testing.assert_close(out.rewards, torch.tensor(expected, dtype=F64))


# =========================================================================== bad input
def test_bad_input():
    good = ppr_state([1.0], [[0.5, 0.5]], [[False, True]], width=2)
    with pytest.raises(RlobjInputError, match=r"ppr_renorm reads 'extras:step_ends'"):
        ppr_renorm()(state_of([1.0], width=2))
    with pytest.raises(RlobjInputError, match=r"at least one step end per response, but rows \[0\]"):
        ppr_renorm()(ppr_state([1.0], [[0.5, 0.5]], [[False, False]], width=2))
    with pytest.raises(RlobjInputError, match=r"extras\['process_rewards'\]: ppr_renorm expected values in \[0, 1\], got \[1.5\]"):
        ppr_renorm()(ppr_state([1.0], [[0.5, 1.5]], [[False, True]], width=2))
    with pytest.raises(RlobjInputError, match=r"rewards: ppr_renorm \(the outcome reward r\^o\) expected values in \[0, 1\]"):
        ppr_renorm()(good.update(rewards=torch.tensor([2.0], dtype=F64)))
    with pytest.raises(RlobjInputError, match=r"extras\['step_ends'\]: expected shape \(batch seq\) = \(1, 2\), got \(1, 3\)"):
        ppr_renorm()(good.update(extras={**good.extras, "step_ends": torch.ones(1, 3, dtype=torch.bool)}))
    with pytest.raises(RlobjInputError, match=r"extras\['step_ends'\]: ppr_renorm expected a bool tensor"):
        ppr_renorm()(good.update(extras={**good.extras, "step_ends": torch.ones(1, 2)}))
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
