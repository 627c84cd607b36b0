"""Reward-model terms (rlobj/terms/rewards/outcome.py, process.py, likelihood.py): hand values with
the arithmetic in comments, plain-loop references on Hypothesis inputs, properties from each paper's
math, detached outputs, recipes with grpo / dr_grpo / dapo, bad input."""

import math

import pytest
import torch
from batches import assert_trains, leaf, make_batch, presets
from hypothesis import given
from hypothesis import strategies as st

from rlobj import Objective, batch_whiten, dapo, dr_grpo, group_zscore, grpo
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjBuildError, RlobjInputError
from rlobj.terms.rewards import (
    aepo_reward,
    co_reward,
    exploration_accuracy,
    first_hit_rank,
    majority_answer,
    ppr_renorm,
)

F64 = torch.float64


def state_of(rewards, group_ids=None, lengths=None, width=4, extras=None, **fields):
    n = len(rewards)
    lengths = lengths or [width] * n
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return State.from_batch(logp=torch.full((n, width), -0.5, dtype=F64), mask=mask,
                            rewards=torch.tensor(rewards, dtype=F64),
                            group_ids=torch.tensor(group_ids if group_ids is not None else [0] * n),
                            extras=extras or {}, **fields)


# ppr_renorm >> dapo is refused by design (test_ppr_renorm_reads_the_final_outcome)
@pytest.mark.parametrize("make,preset", [(m, p) for m in (ppr_renorm, co_reward, aepo_reward) for p in (grpo, dr_grpo, dapo)
                                         if not (m is ppr_renorm and p is dapo)])
def test_composes_before_presets(make, preset):
    out = assert_trains(make() >> preset)
    assert not out.state.rewards.requires_grad


def test_ppr_renorm_reads_the_final_outcome():
    # ppr_renorm reads the outcome and leaves it in rewards: a reward term after it (dapo's
    # overlong penalty) would change an outcome it already used, which the chain refuses
    with pytest.raises(RlobjBuildError, match=r"overlong_penalty writes 'rewards' after ppr_renorm already read it"):
        ppr_renorm() >> dapo


# =========================================================================== PPR ReNorm
def ppr_state(outcome, process, ends, lengths=None, width=4, token_rewards=None):
    extras = {"step_ends": torch.tensor(ends), "process_rewards": torch.tensor(process, dtype=F64)}
    fields = {"token_rewards": torch.tensor(token_rewards, dtype=F64)} if token_rewards is not None else {}
    return state_of(outcome, lengths=lengths, width=width, extras=extras, **fields)


def test_ppr_hand_values():
    # row 0 correct (r^o = 1), turns end at t = 1 (r^p = .8) and t = 3 (the answer turn):
    #   .8 + 1 - 1 = .8 at t = 1; t = 3 keeps the outcome alone (in rewards)
    # row 1 wrong (r^o = 0), length 3, turns end at t = 0 (r^p = .9), t = 1 (r^p = .4) and t = 2
    #   (answer): .9 - 1 = -.1, .4 - 1 = -.6; t = 3 is padding: its end flag is ignored
    s = ppr_state([1.0, 0.0], [[0.0, 0.8, 0.5, 0.2], [0.9, 0.4, 0.0, 0.7]],
                  [[False, True, False, True], [True, True, True, True]], lengths=[4, 3])
    out = ppr_renorm()(s)
    torch.testing.assert_close(out.token_rewards, torch.tensor([[0, 0.8, 0, 0], [-0.1, -0.6, 0, 0]], dtype=F64))
    assert out.rewards.tolist() == [1.0, 0.0]  # the outcome stays (reference: ORM at the last token)
    assert float(out.metrics["ppr/steps"]) == 1.5
    # existing token rewards are kept (e.g. a KL folded into the reward before it)
    s = ppr_state([1.0], [[1.0, 1.0]], [[True, True]], width=2, token_rewards=[[-0.1, -0.2]])
    torch.testing.assert_close(ppr_renorm()(s).token_rewards, torch.tensor([[0.9, -0.2]], dtype=F64))
    # one turn (or none): the outcome only, as the reference skips rows with <= 1 boundary
    s = ppr_state([1.0, 0.0], [[0.3, 0.3], [0.3, 0.3]], [[False, True], [False, False]], width=2)
    assert ppr_renorm()(s).token_rewards.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    # beta shifts the judged turns: .8 + 1 - .5
    s = ppr_state([1.0], [[0.8, 0.0]], [[True, True]], width=2)
    assert ppr_renorm(beta=0.5)(s).token_rewards.tolist() == [[pytest.approx(1.3), 0.0]]


def reference_renorm(outcome, process, ends, lengths, width, beta=1.0):
    """Transcription of Zhuohao-Li/ppr main_ppo.py RewardManager for one batch: outcome at the
    last valid token, process scores at the turn boundaries but the last, then
    _apply_process_reward_optimizations (score + orm_score - beta, rows with <= 1 boundary skipped)."""
    out = [[0.0] * width for _ in outcome]
    for i, length in enumerate(lengths):
        boundaries = [t for t in range(length) if ends[i][t]]
        out[i][length - 1] = outcome[i]
        for pos in boundaries[:-1]:
            out[i][pos] = process[i][pos]
        if len(boundaries) <= 1:
            continue
        orm = out[i][boundaries[-1]]
        for pos in boundaries[:-1]:
            out[i][pos] = out[i][pos] + orm - beta
    return out


@st.composite
def ppr_inputs(draw):
    n, width = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(1, width), min_size=n, max_size=n))
    outcome = draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)), min_size=n, max_size=n))
    process = draw(st.lists(st.lists(st.floats(0, 1), min_size=width, max_size=width), min_size=n, max_size=n))
    ends = draw(st.lists(st.lists(st.booleans(), min_size=width, max_size=width), min_size=n, max_size=n))
    for row, length in zip(ends, lengths):
        row[length - 1] = True  # the answer turn ends at the last token (the outcome's position)
    return outcome, process, ends, lengths, width


@given(ppr_inputs(), st.sampled_from([1.0, 0.5]))
def test_ppr_matches_the_reference_reward_tensor(data, beta):
    outcome, process, ends, lengths, width = data
    out = ppr_renorm(beta=beta)(ppr_state(outcome, process, ends, lengths, width))
    expected = reference_renorm(outcome, process, ends, lengths, width, beta)
    for i in range(len(outcome)):
        ours = out.token_rewards[i].tolist()
        ours[lengths[i] - 1] += float(out.rewards[i])  # the outcome rides on the last token
        assert ours == pytest.approx(expected[i], abs=1e-12)
        if beta == 1.0:
            judged = [t for t in range(lengths[i]) if ends[i][t]][:-1]
            for t in judged:
                r = float(out.token_rewards[i, t])
                assert -1.0 <= r <= 1.0
                assert r >= 0.0 if outcome[i] == 1.0 else True  # sign consistency
                assert r <= 0.0 if outcome[i] == 0.0 else True
    assert not out.token_rewards.requires_grad


def test_ppr_extremes():
    # perfectly scored correct trajectory -> +1 per judged turn; zero-scored wrong one -> -1
    s = ppr_state([1.0, 0.0], [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], [[True, True, True], [True, True, True]], width=3)
    assert ppr_renorm()(s).token_rewards.tolist() == [[1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]]


def test_ppr_returns_with_batch_whiten():
    # one row, turns end at t = 0 (r^p = 1), t = 2 (r^p = .5) and t = 3 (answer), outcome 1: step
    # rewards 1 and .5, the outcome 1 on the last token; returns to go (gamma = 1): [2.5, 1.5, 1.5, 1]
    s = ppr_state([1.0], [[1.0, 0.0, 0.5, 0.0]], [[True, False, True, True]], width=4)
    out = (ppr_renorm() >> batch_whiten())(s)
    returns = torch.tensor([2.5, 1.5, 1.5, 1.0], dtype=F64)
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


# =========================================================================== bad input
def test_bad_input():
    good = ppr_state([1.0], [[0.5, 0.5]], [[False, True]], width=2)
    with pytest.raises(RlobjInputError, match=r"ppr_renorm reads 'extras:step_ends'"):
        ppr_renorm()(state_of([1.0], width=2))
    with pytest.raises(RlobjInputError, match=r"extras\['process_rewards'\]: ppr_renorm expected values in \[0, 1\], got \[1.5\]"):
        ppr_renorm()(ppr_state([1.0], [[1.5, 0.5]], [[True, True]], width=2))
    with pytest.raises(RlobjInputError, match=r"ppr_renorm.beta: expected >= 0.0, got -1"):
        ppr_renorm(beta=-1)
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


# =========================================================================== Self-Aligned Reward
from rlobj.terms.rewards import (  # noqa: E402
    answer_probability,
    conciseness_reward,
    gcpo_reward,
    rlpr_reward,
    self_aligned_reward,
    self_aligned_score,
    vsrm_step_reward,
)


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


# =========================================================================== VSRM
def vsrm_state(ends, accuracy, start, lengths=None, width=None, outcome=None):
    width = width or len(ends[0])
    return state_of(outcome or [0.0] * len(ends), lengths=lengths, width=width, extras={
        "step_ends": torch.tensor(ends), "step_accuracy": torch.tensor(accuracy, dtype=F64),
        "start_accuracy": torch.tensor(start, dtype=F64)})


def test_vsrm_hand_values():
    # steps end at t = 1, 3, 4 with prefix accuracies .25, .25, 1; a_0 = 0:
    # gains d = .25 - 0 = .25, .25 - .25 = 0, 1 - .25 = .75 (sum 1 = a_K - a_0)
    s = vsrm_state([[False, True, False, True, True]], [[0, 0.25, 0, 0.25, 1.0]], [0.0])
    out = vsrm_step_reward(lookahead=0)(s)
    assert out.token_rewards.tolist() == [[0, 0.25, 0, 0.0, 0.75]]
    # look-ahead W = 2, gamma = .5 (the reference's rule): r_1 = .25 (its own gain is not flat:
    # later gains are not added); r_2 = .5 * .75 = .375 (flat: the next non-flat gain, decayed);
    # r_3 = .75
    out = vsrm_step_reward(lookahead=2, gamma=0.5)(s)
    assert out.token_rewards.tolist() == [[0, 0.25, 0, 0.375, 0.75]]


def test_vsrm_defaults_are_the_references():
    # 1benwu1/VSRM-Efficient-LRMs rollout_postprocess.py compute_step_reward: gamma 0.7,
    # MAX_LOOKAHEAD 4, flat below 1e-5
    term = vsrm_step_reward()
    assert (term.lookahead, term.gamma, term.flat) == (4, 0.7, 1e-5)


def reference_step_rewards(acc_list, gamma, lookahead):
    """Transcription of VSRM's compute_step_reward for one response (acc_list[j]: accuracy of
    the j-th prefix, the last one the whole reasoning); returns one reward per split."""
    rewards = []
    n = len(acc_list) - 1
    for j in range(n):
        delta = acc_list[j + 1] - acc_list[j]
        if abs(delta) < 1e-5:
            k, steps = j + 1, 0
            while steps < lookahead and k < n and abs(acc_list[k + 1] - acc_list[k]) < 1e-5:
                k += 1
                steps += 1
            if steps == lookahead:
                reward = 0.0
            elif k < n:
                change = acc_list[k + 1] - acc_list[k]
                reward = (1 if change > 0 else -1) * abs(change) * gamma ** (k - j)
            else:
                final = acc_list[-1] - acc_list[j]
                reward = (1 if final > 0 else -1) * abs(final) * gamma ** (n - j - 1)
        else:
            reward = delta
        rewards.append(reward)
    return rewards


@st.composite
def vsrm_inputs(draw):
    n, width = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    lengths = draw(st.lists(st.integers(0, width), min_size=n, max_size=n))
    ends = draw(st.lists(st.lists(st.booleans(), min_size=width, max_size=width), min_size=n, max_size=n))
    acc = draw(st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=width, max_size=width),
                        min_size=n, max_size=n))
    start = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n, max_size=n))
    return ends, acc, start, lengths, width


@given(vsrm_inputs(), st.integers(1, 4), st.floats(0, 1))
def test_vsrm_matches_loop_reference_and_telescopes(data, window, gamma):
    ends, acc, start, lengths, width = data
    out = vsrm_step_reward(lookahead=window, gamma=gamma)(vsrm_state(ends, acc, start, lengths, width))
    plain = vsrm_step_reward(lookahead=0)(vsrm_state(ends, acc, start, lengths, width))
    for i in range(len(ends)):
        positions = [t for t in range(lengths[i]) if ends[i][t]]
        levels = [start[i]] + [acc[i][t] for t in positions]
        expected = reference_step_rewards(levels, gamma, window)
        for k, t in enumerate(positions):
            assert float(out.token_rewards[i, t]) == pytest.approx(expected[k], abs=1e-9)
            assert -1.0 <= float(plain.token_rewards[i, t]) <= 1.0
        others = [t for t in range(width) if t not in positions]
        assert all(float(out.token_rewards[i, t]) == 0.0 for t in others)
        if positions:  # telescoping: sum of the plain gains = a_K - a_0
            assert float(plain.token_rewards[i].sum()) == pytest.approx(levels[-1] - levels[0], abs=1e-12)


def test_vsrm_propagation_reaches_a_zero_gain_step_and_decays_with_distance():
    # gains 0, 0, 0, 1 (accuracy jumps only at the last step): with W = 3, gamma = .5 the earlier
    # steps get .125, .25, .5 — positive and smaller the further they are from the gain
    s = vsrm_state([[True, True, True, True]], [[0.0, 0.0, 0.0, 1.0]], [0.0])
    out = vsrm_step_reward(lookahead=3, gamma=0.5)(s)
    assert out.token_rewards.tolist() == [[0.125, 0.25, 0.5, 1.0]]
    # past the window the flat step gets nothing: W = 2 reaches only the 2 next gains
    out = vsrm_step_reward(lookahead=2, gamma=0.5)(s)
    assert out.token_rewards.tolist() == [[0.0, 0.25, 0.5, 1.0]]


# =========================================================================== recipes, bad input (second batch)
@pytest.mark.parametrize("make", [self_aligned_reward, rlpr_reward, conciseness_reward, gcpo_reward, vsrm_step_reward])
@presets()
def test_second_batch_composes_before_presets(make, preset):
    out = assert_trains(make() >> preset, seed=4)
    assert not out.state.rewards.requires_grad


def test_step_rewards_compose_with_token_returns():
    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=4))
    for term in (ppr_renorm(), vsrm_step_reward(lookahead=2)):
        out = Objective(term >> grpo.replace(group_zscore, batch_whiten()))(**batch)
        assert torch.isfinite(out.loss)


def test_bad_input_second_batch():
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
    with pytest.raises(RlobjInputError, match=r"vsrm_step_reward.gamma: expected <= 1.0, got 2"):
        vsrm_step_reward(gamma=2)
    with pytest.raises(RlobjInputError, match=r"step_accuracy'\]: vsrm_step_reward expected values in \[0, 1\]"):
        vsrm_step_reward()(vsrm_state([[True]], [[1.5]], [0.0]))
    with pytest.raises(RlobjInputError, match=r"vsrm_step_reward reads 'extras:start_accuracy'"):
        vsrm_step_reward()(state_of([0.0], width=1, extras={"step_ends": torch.ones(1, 1, dtype=torch.bool),
                                                            "step_accuracy": torch.zeros(1, 1, dtype=F64)}))
