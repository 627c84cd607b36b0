"""rlobj/rollout/filters.py: hand values with the arithmetic in comments, plain-loop references on
Hypothesis inputs, properties from the math, the filtered batches under grpo / dr_grpo / dapo, bad
input; one section per filter.

RLPR std filter: properties (beta = 0 keeps all; the largest-std group is kept first; the EMA
update is a convex combination; schedule of tracking and filtering).
DAPO dynamic sampling, SELF curation and DARS allocation.
RoRecomp priority / compensation batches: the properties of the specs (§15), the kept rows under
grpo / dr_grpo / dapo. PROF's filter (rlobj/rollout/prof.py, re-exported here) is in test_prof.py.
"""

import math
from fractions import Fraction

import pytest
import torch
from batches import F64, leaf, make_batch, presets, shuffled_group_ids
from hypothesis import given
from hypothesis import strategies as st

from rlobj import Objective, dapo
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.filters import (
    compensation_step,
    dars_cumulative_advantage,
    dars_extra_rollouts,
    dynamic_sampling,
    first_groups,
    informative_groups,
    rorecomp_priority,
    self_curation,
    std_filter,
)

PRESETS = presets()


# =========================================================================== RLPR std filter
def test_hand_values_and_schedule():
    rewards = torch.tensor([0.0, 1.0, 0.5, 0.5, 0.2, 0.4], dtype=F64)
    group_ids = torch.tensor([0, 0, 1, 1, 2, 2])
    # Bessel stds: group 0: |0 - 1| / sqrt(2) = .707107; group 1: 0; group 2: .2 / sqrt(2) = .141421
    # mean = (.707107 + 0 + .141421) / 3 = .282843
    early = std_filter(rewards, group_ids, ema=None, step=3)  # before ema_start: nothing tracked, all kept
    assert early.ema is None and early.keep.all()
    first = std_filter(rewards, group_ids, ema=None, step=6)  # first update: the plain mean
    assert first.ema == pytest.approx(0.282843, abs=1e-6) and first.keep.all()  # step < filter_start
    # step 11, previous EMA .3: EMA = .99 * .3 + .01 * .282843 = .299828; threshold .5 * .299828 = .149914:
    # keep group 0 (.707) only; group 2 (.141) and group 1 (0) are dropped
    later = std_filter(rewards, group_ids, ema=0.3, step=11)
    assert later.ema == pytest.approx(0.99 * 0.3 + 0.01 * 0.282843, abs=1e-8)
    assert later.keep.tolist() == [True, True, False, False, False, False]
    torch.testing.assert_close(later.group_std, torch.tensor([0.5**0.5] * 2 + [0.0] * 2 + [0.02**0.5] * 2, dtype=F64))
    # population std (unbiased=False): group 2 .1, group 0 .5
    assert std_filter(rewards, group_ids, ema=0.3, step=11, unbiased=False).group_std[4] == pytest.approx(0.1)


@st.composite
def inputs(draw):
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=5))
    group_ids = [g for g, size in enumerate(sizes) for _ in range(size)]
    rewards = draw(st.lists(st.floats(0, 1), min_size=len(group_ids), max_size=len(group_ids)))
    order = draw(st.permutations(range(len(group_ids))))
    return [rewards[i] for i in order], [group_ids[i] for i in order]


def loop_reference(rewards, group_ids, ema, step, beta, rate, unbiased):
    stds = {}
    for g in dict.fromkeys(group_ids):
        values = [r for r, h in zip(rewards, group_ids) if h == g]
        mean = sum(values) / len(values)
        denominator = (len(values) - 1) if unbiased else len(values)
        stds[g] = math.sqrt(sum((v - mean) ** 2 for v in values) / denominator) if len(values) > 1 else 0.0
    mean_std = sum(stds.values()) / len(stds)
    if step >= 6:
        ema = mean_std if ema is None else rate * ema + (1 - rate) * mean_std
    keep = [step < 11 or ema is None or stds[g] >= beta * ema for g in group_ids]
    return keep, ema


@given(inputs(), st.one_of(st.none(), st.floats(0, 1)), st.integers(0, 15), st.floats(0, 1.5), st.floats(0, 1),
       st.booleans())
def test_matches_loop_reference(data, ema, step, beta, rate, unbiased):
    rewards, group_ids = data
    out = std_filter(torch.tensor(rewards, dtype=F64), torch.tensor(group_ids), ema, step, beta, rate,
                     unbiased=unbiased)
    keep, new_ema = loop_reference(rewards, group_ids, ema, step, beta, rate, unbiased)
    if new_ema is None:
        assert out.ema is None
    else:
        assert out.ema == pytest.approx(new_ema, abs=1e-12)
    # stds equal to the threshold up to rounding can go either way: compare away from the boundary
    threshold = beta * (out.ema or 0.0)
    for i, kept in enumerate(keep):
        if abs(float(out.group_std[i]) - threshold) > 1e-9:
            assert bool(out.keep[i]) == kept


@given(inputs(), st.floats(0, 1), st.floats(0, 1))
def test_properties(data, ema, rate):
    rewards, group_ids = data
    r, g = torch.tensor(rewards, dtype=F64), torch.tensor(group_ids)
    assert std_filter(r, g, ema, step=20, beta=0.0).keep.all()  # beta = 0 keeps everything
    out = std_filter(r, g, ema, step=20, rate=rate)
    # convex combination: the new EMA lies between the old one and this step's mean std
    stds = {int(k): float(out.group_std[g == k][0]) for k in torch.unique(g)}
    mean_std = sum(stds.values()) / len(stds)
    assert min(ema, mean_std) - 1e-12 <= out.ema <= max(ema, mean_std) + 1e-12
    # monotone: whenever a group is kept, every group with a larger std is kept too
    kept_stds = [s for k, s in stds.items() if bool(out.keep[g == k].all())]
    if kept_stds:
        assert all(bool(out.keep[g == k].all()) for k, s in stds.items() if s >= min(kept_stds))
    # and the largest-std group is the last to go
    if not all(s == 0 for s in stds.values()):
        best = max(stds, key=stds.get)
        for beta in (0.5, 1.0, 2.0):
            o = std_filter(r, g, ema, step=20, beta=beta, rate=rate)
            if o.keep.any():
                assert bool(o.keep[g == best].all())


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"rewards: std_filter expected a float tensor of shape \(batch,\)"):
        std_filter(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), None, 0)
    with pytest.raises(RlobjInputError, match=r"group_ids: expected shape \(batch\) = \(2,\), got \(3,\)"):
        std_filter(torch.zeros(2), torch.zeros(3, dtype=torch.long), None, 0)
    with pytest.raises(RlobjInputError, match=r"std_filter.beta: expected >= 0, got -1"):
        std_filter(torch.zeros(2), torch.zeros(2, dtype=torch.long), None, 0, beta=-1)
    with pytest.raises(RlobjInputError, match=r"std_filter.rate: expected in \[0, 1\], got 2"):
        std_filter(torch.zeros(2), torch.zeros(2, dtype=torch.long), None, 0, rate=2)
    with pytest.raises(RlobjInputError, match=r"rewards: expected finite values"):
        std_filter(torch.tensor([0.0, float("nan")]), torch.zeros(2, dtype=torch.long), None, 0)


# =========================================================================== DAPO dynamic sampling, SELF curation, DARS
@st.composite
def grouped_rewards(draw, max_groups=5):
    ids = draw(shuffled_group_ids(1, 4, max_groups))
    rewards = draw(st.lists(st.sampled_from([0.0, 1.0, 0.5]), min_size=len(ids), max_size=len(ids)))
    return rewards, list(ids)


# --------------------------------------------------------------------------- DAPO: hand values
def test_informative_groups_hand_values():
    # group 0: {1, 0} mixed -> keep; group 1: {1, 1} all equal -> drop; group 2: one member -> keep (verl)
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    ids = torch.tensor([0, 0, 1, 1, 2])
    assert informative_groups(rewards, ids).tolist() == [True, True, False, False, True]
    assert informative_groups(rewards, ids, keep_singletons=False).tolist() == [True, True, False, False, False]
    # first_groups keeps the first 1 kept group in order of appearance: group 0
    assert first_groups(informative_groups(rewards, ids), ids, 1).tolist() == [True, True, False, False, False]


def test_dynamic_sampling_hand_values():
    # round 0: group 0 {1,1} dropped, group 1 {0,1} kept -> 1 group;
    # round 1: group 0 {0,0} dropped, group 1 {1,0} kept, group 2 {0,1} kept but not needed (trimmed)
    rounds = [dict(rewards=torch.tensor([1.0, 1.0, 0.0, 1.0]), group_ids=torch.tensor([0, 0, 1, 1]),
                   tokens=torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])),
              dict(rewards=torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 1.0]), group_ids=torch.tensor([0, 0, 1, 1, 2, 2]),
                   tokens=torch.tensor([[9, 9], [9, 9], [10, 11], [12, 13], [14, 15], [16, 17]]))]
    calls = []
    out = dynamic_sampling(lambda k: calls.append(k) or rounds[k], groups_needed=2, max_rounds=5)
    assert calls == [0, 1] and out.rounds == 2 and out.groups == 2 and out.sampled_groups == 5
    assert out.batch["rewards"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert out.batch["group_ids"].tolist() == [0, 0, 1, 1]
    assert out.batch["tokens"].tolist() == [[5, 6], [7, 8], [10, 11], [12, 13]]
    # cap at one round: raises, or returns the one group with allow_shortfall
    with pytest.raises(RlobjInputError, match=r"only 1 of 2 groups had non-equal rewards after 1 rounds"):
        dynamic_sampling(lambda k: rounds[k], groups_needed=2, max_rounds=1)
    short = dynamic_sampling(lambda k: rounds[k], groups_needed=2, max_rounds=1, allow_shortfall=True)
    assert short.groups == 1 and short.batch["group_ids"].tolist() == [0, 0]


# --------------------------------------------------------------------------- DAPO: loop reference
def loop_informative(rewards, ids, keep_singletons):
    keep = []
    for g in ids:
        members = [r for r, h in zip(rewards, ids) if h == g]
        keep.append(len(set(members)) > 1 or (keep_singletons and len(members) == 1))
    return keep


@given(grouped_rewards(), st.booleans())
def test_informative_groups_matches_loop(data, keep_singletons):
    rewards, ids = data
    out = informative_groups(torch.tensor(rewards, dtype=F64), torch.tensor(ids), keep_singletons)
    assert out.tolist() == loop_informative(rewards, ids, keep_singletons)


@given(st.lists(grouped_rewards(max_groups=3), min_size=1, max_size=4), st.integers(1, 6), st.integers(0, 5))
def test_dynamic_sampling_matches_loop(rounds, needed, cap):
    def sample(k):
        rewards, ids = rounds[k % len(rounds)]
        return dict(rewards=torch.tensor(rewards, dtype=F64), group_ids=torch.tensor(ids),
                    row=torch.arange(len(ids)) + 100 * k)

    # plain loop: walk rounds, groups in order of first appearance, accept informative ones until full
    # (rows keep their batch order inside a round; new group ids count accepted groups)
    accepted, rows_out, ids_out, used, k = 0, [], [], 0, 0
    while accepted < needed and (cap == 0 or k < cap) and k < 40:
        rewards, ids = rounds[k % len(rounds)]
        keep = loop_informative(rewards, ids, True)
        new_id = {}
        for g in dict.fromkeys(ids):
            if keep[ids.index(g)] and accepted < needed:
                new_id[g] = accepted
                accepted += 1
        for i, g in enumerate(ids):
            if g in new_id:
                rows_out.append(100 * k + i)
                ids_out.append(new_id[g])
        k += 1
        used = k
    if cap == 0 and accepted < needed:  # all rounds uninformative: the uncapped driver would not stop
        return
    if accepted < needed:
        with pytest.raises(RlobjInputError, match="non-equal rewards"):
            dynamic_sampling(sample, needed, max_rounds=cap)
        return
    out = dynamic_sampling(sample, needed, max_rounds=cap)
    assert out.rounds == used and out.groups == needed
    assert out.batch["row"].tolist() == rows_out
    assert out.batch["group_ids"].tolist() == ids_out
    # property: no returned group has all-equal rewards (unless it is a singleton)
    assert bool(informative_groups(out.batch["rewards"], out.batch["group_ids"]).all())
    assert out.batch["row"].dtype == torch.int64 and not out.batch["rewards"].requires_grad


@PRESETS
def test_dynamic_sampling_feeds_presets(preset):
    pool = [make_batch([3, 3, 3], [4, 2, 5, 3, 1, 4, 6, 2, 3], seed=s) for s in range(6)]
    for fields in pool:  # make group 1 of every round uninformative
        fields["rewards"][3:6] = 1.0

    def sample(k):
        fields = pool[k]
        return dict(rewards=fields["rewards"], group_ids=fields["group_ids"], logp=fields["logp"],
                    logp_old=fields["logp_old"], mask=fields["mask"])

    out = dynamic_sampling(sample, groups_needed=4, max_rounds=6)
    # dapo's group filter reads each response's accuracy (here the 0/1 reward)
    result = Objective(preset)(**leaf(out.batch), extras={"accuracy": (out.batch["rewards"] > 0.5).to(out.batch["rewards"].dtype)})
    assert torch.isfinite(result.loss)
    if preset is dapo:  # the in-objective half of dynamic sampling finds nothing left to drop
        assert float(result.metrics["groups/zero_variance_frac"]) == 0.0


def test_dynamic_sampling_bad_input():
    good = dict(rewards=torch.tensor([0.0, 1.0]), group_ids=torch.tensor([0, 0]))
    with pytest.raises(RlobjInputError, match=r"dynamic_sampling.groups_needed: expected >= 1, got 0"):
        dynamic_sampling(lambda k: good, 0)
    with pytest.raises(RlobjInputError, match=r"dynamic_sampling.max_rounds: expected >= 0"):
        dynamic_sampling(lambda k: good, 1, max_rounds=-1)
    with pytest.raises(RlobjInputError, match=r"sample: dynamic_sampling expected a mapping with 'rewards'"):
        dynamic_sampling(lambda k: {"rewards": good["rewards"]}, 1)
    with pytest.raises(RlobjInputError, match=r"sample\['mask'\]: dynamic_sampling expected a tensor with first axis"):
        dynamic_sampling(lambda k: {**good, "mask": torch.ones(3, 2)}, 1)
    with pytest.raises(RlobjInputError, match=r"group_ids: informative_groups expected an integer tensor"):
        informative_groups(torch.zeros(2), torch.zeros(2))
    with pytest.raises(RlobjInputError, match=r"rewards: expected finite values"):
        informative_groups(torch.tensor([0.0, float("nan")]), torch.zeros(2, dtype=torch.long))
    with pytest.raises(RlobjInputError, match=r"group_ids: expected shape \(batch\) = \(2,\), got \(3,\)"):
        informative_groups(torch.zeros(2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(RlobjInputError, match=r"keep: first_groups expected one value per group, group 0 is mixed"):
        first_groups(torch.tensor([True, False]), torch.tensor([0, 0]), 1)


# --------------------------------------------------------------------------- SELF
def test_self_curation_hand_values_and_properties():
    # greedy rewards 1 (solved) -> skip; 0 and 0.5 (not fully correct) -> keep
    assert self_curation(torch.tensor([1.0, 0.0, 0.5, 1.0])).tolist() == [False, True, True, False]
    assert not self_curation(torch.ones(3)).any()  # all solved greedily: the step is skipped
    assert self_curation(torch.tensor([1.0, 2.0]), correct_reward=2.0).tolist() == [True, False]


@given(st.lists(st.sampled_from([0.0, 1.0, 0.25, -1.0]), min_size=1, max_size=8))
def test_self_curation_matches_loop(rewards):
    assert self_curation(torch.tensor(rewards, dtype=F64)).tolist() == [r != 1.0 for r in rewards]


@PRESETS
def test_self_curated_prompts_feed_presets(preset):
    fields = make_batch([4, 4, 4], [4, 2, 5, 3, 1, 4, 6, 2, 3, 3, 2, 1], seed=2)
    keep_prompts = self_curation(torch.tensor([1.0, 0.0, 0.0]))  # prompt 0 solved greedily
    rows = keep_prompts[fields["group_ids"]]
    batch = {k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in fields.items() if k != "extras"}
    batch["extras"] = {"accuracy": (batch["rewards"] > 0.5).to(batch["rewards"].dtype)}  # dapo's filter reads it
    out = Objective(preset)(**leaf(batch))
    assert torch.isfinite(out.loss) and int(rows.sum()) == 8


def test_self_curation_bad_input():
    with pytest.raises(RlobjInputError, match=r"greedy_rewards: self_curation expected a 1-D tensor"):
        self_curation(torch.zeros(2, 2))
    with pytest.raises(RlobjInputError, match=r"greedy_rewards: self_curation expected a float tensor"):
        self_curation(torch.zeros(2, dtype=torch.long))
    with pytest.raises(RlobjInputError, match=r"greedy_rewards: expected finite values"):
        self_curation(torch.tensor([float("inf")]))


# --------------------------------------------------------------------------- DARS
def test_dars_hand_values():
    # N = 8, ET, A_peak = 8 * 2 * .25 = 4:
    #   c = 2: p = 1/4, S = 2 * 1/4 * 3/4 = .375, (4 - 8 * .375) / .375 = 2.67 -> 3
    #   c = 1: p = 1/8, S = .21875, (4 - 1.75) / .21875 = 10.29 -> 11
    #   c = 0: p = 1/16, S = .1171875, (4 - .9375) / .1171875 = 26.13 -> 27, capped at 32 - 8 = 24
    #   c = 4, 8: p >= 1/2 -> 0
    correct = torch.tensor([2, 1, 0, 4, 8])
    assert dars_extra_rollouts(correct).tolist() == [3, 11, 24, 0, 0]
    # HW: target 2 (1 - p) * 4: c = 2: (6 - 3) / .375 = 8 exactly (no round-off extra);
    #   c = 1: (7 - 1.75) / .21875 = 24; c = 0: (7.5 - .9375) / .1171875 = 56 = 64 - 8
    assert dars_extra_rollouts(correct, schedule="hw").tolist() == [8, 24, 56, 0, 0]
    # with std: S = 2 sqrt(p (1 - p)), A_peak = 8: c = 2: S = .8660, (8 - 6.928) / .8660 = 1.24 -> 2
    assert dars_extra_rollouts(torch.tensor([2]), use_std=True).tolist() == [2]
    # S(p) identity: sum_i |r_i - p| = 2 p (1 - p) N for binary r with p = c / N (c = 3, N = 8)
    rewards = torch.tensor([1.0] * 3 + [0.0] * 5, dtype=F64)
    assert float((rewards - 3 / 8).abs().sum()) == pytest.approx(8 * float(dars_cumulative_advantage(torch.tensor(3 / 8))))


def loop_dars(c, n, schedule, cap, use_std):
    """Exact rational arithmetic (no std) or math.sqrt (std), written from the formula."""
    p = Fraction(c, n) if c > 0 else Fraction(1, 2 * n)
    if p >= Fraction(1, 2):
        return 0
    if use_std:
        s, peak = 2 * math.sqrt(p * (1 - p)), n * 1.0
        target = peak if schedule == "et" else 2 * (1 - float(p)) * peak
        extra = math.ceil((target - n * s) / s - 1e-9)
    else:
        s, peak = 2 * p * (1 - p), Fraction(n, 2)
        target = peak if schedule == "et" else 2 * (1 - p) * peak
        extra = math.ceil((target - n * s) / s)
    return max(0, min(extra, cap - n))


@given(st.integers(1, 40), st.data(), st.sampled_from(["et", "hw"]), st.booleans())
def test_dars_matches_loop_and_properties(n, data, schedule, use_std):
    cap = data.draw(st.integers(n, 4 * n + 70))
    correct = torch.arange(0, n + 1)
    out = dars_extra_rollouts(correct, n, schedule, cap, use_std)
    assert out.dtype == torch.int64
    assert out.tolist() == [loop_dars(c, n, schedule, cap, use_std) for c in range(n + 1)]
    assert bool((out >= 0).all()) and bool((out <= cap - n).all())
    assert all(int(out[c]) == 0 for c in range(n + 1) if 2 * c >= n)  # p >= 1/2 -> 0
    inner = out[1:][(correct[1:] * 2 < n)]
    assert bool((inner[1:] <= inner[:-1]).all())  # non-increasing in p on (0, 1/2)
    et = dars_extra_rollouts(correct, n, "et", cap, use_std)
    hw = dars_extra_rollouts(correct, n, "hw", cap, use_std)
    assert bool((hw >= et).all())  # hardness weighting never gives fewer
    # without the ceiling and the cap, (N + dn) S(p) reaches the target exactly
    if not use_std:
        for c in range(1, n + 1):
            p = Fraction(c, n)
            if p < Fraction(1, 2):
                s = 2 * p * (1 - p)
                target = Fraction(n, 2) if schedule == "et" else (1 - p) * n
                assert (n + (target - n * s) / s) * s == target


@PRESETS
def test_dars_extra_rollouts_merged_into_groups_feed_presets(preset):
    # first pass: 2 prompts x 4 rollouts; prompt 0 has 1 correct (p = 1/4), prompt 1 has 3 (p = 3/4)
    extra = dars_extra_rollouts(torch.tensor([1, 3]), rollouts=4, max_rollouts=16)
    # N = 4, p = 1/4: S = .375, (2 - 1.5) / .375 = 1.33 -> 2 extra for prompt 0; none for prompt 1
    assert extra.tolist() == [2, 0]
    sizes = [4 + int(extra[0]), 4]
    fields = make_batch(sizes, [3] * sum(sizes), seed=1)
    fields["rewards"] = torch.tensor([1.0, 0, 0, 0, 1, 0, 1, 1, 1, 0])
    out = Objective(preset)(**leaf(fields))
    assert torch.isfinite(out.loss)


def test_dars_bad_input():
    with pytest.raises(RlobjInputError, match=r"correct: dars_extra_rollouts expected counts in \[0, 8\], got \[9\]"):
        dars_extra_rollouts(torch.tensor([9]))
    with pytest.raises(RlobjInputError, match=r"correct: dars_extra_rollouts expected an integer tensor"):
        dars_extra_rollouts(torch.tensor([1.0]))
    with pytest.raises(RlobjInputError, match=r"dars_extra_rollouts.schedule: expected 'et' or 'hw', got 'x'"):
        dars_extra_rollouts(torch.tensor([1]), schedule="x")
    with pytest.raises(RlobjInputError, match=r"dars_extra_rollouts.max_rollouts: expected >= rollouts = 8, got 4"):
        dars_extra_rollouts(torch.tensor([1]), max_rollouts=4)
    with pytest.raises(RlobjInputError, match=r"dars_extra_rollouts.rollouts: expected >= 1, got 0"):
        dars_extra_rollouts(torch.tensor([0]), rollouts=0)


# =========================================================================== RoRecomp, PROF
@st.composite
def groups(draw, min_size=1):
    ids = draw(shuffled_group_ids(min_size, 6, max_groups=4))
    n = len(ids)
    rewards = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    return rewards, lengths, list(ids)


# --------------------------------------------------------------------------- RoRecomp
def test_rorecomp_hand_values():
    # group 0: correct lengths 5, 3, 9 (rows 0-2): ceil(.5 * 3) = 2 shortest -> rows 1 (3), 0 (5);
    #          incorrect 4, 7 (rows 3, 4): ceil(.5 * 2) = 1 longest -> row 4 (7)
    # group 1: correct 2, 2 (rows 5, 6): ceil(.5 * 2) = 1, tie -> the earlier row 5; no incorrect
    rewards = torch.tensor([1.0, 1, 1, 0, 0, 1, 1])
    lengths = torch.tensor([5, 3, 9, 4, 7, 2, 2])
    ids = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    assert rorecomp_priority(rewards, lengths, ids).tolist() == [True, True, False, False, True, True, False]
    # alpha = 1 keeps everything; alpha = .2: ceil(.6) = 1 shortest correct per group, ceil(.4) = 1 longest wrong
    assert rorecomp_priority(rewards, lengths, ids, alpha=1.0).all()
    assert rorecomp_priority(rewards, lengths, ids, alpha=0.2).tolist() == [False, True, False, False, True, True, False]


def test_compensation_hand_values():
    # capacity 4, batch 3: () + [a, b] -> 2 < 4, nothing; + [c, d, e] -> 5 >= 4: pop a, b, c; keep d, e
    first = compensation_step((), ["a", "b"], capacity=4, batch_size=3)
    assert first.buffer == ("a", "b") and first.compensation is None
    second = compensation_step(first.buffer, ["c", "d", "e"], capacity=4, batch_size=3)
    assert second.compensation == ("a", "b", "c") and second.buffer == ("d", "e")
    # gate off: cut the oldest overflow (5 - 4 = 1 item) instead
    closed = compensation_step(first.buffer, ["c", "d", "e"], capacity=4, batch_size=3, gate=False)
    assert closed.compensation is None and closed.discarded == ("a",) and closed.buffer == ("b", "c", "d", "e")


def loop_priority(rewards, lengths, ids, alpha):
    keep = [False] * len(ids)
    for g in set(ids):
        right = sorted((lengths[i], i) for i in range(len(ids)) if ids[i] == g and rewards[i] > 0.5)
        wrong = sorted((-lengths[i], i) for i in range(len(ids)) if ids[i] == g and rewards[i] <= 0.5)
        for _, i in right[:math.ceil(alpha * len(right))] + wrong[:math.ceil(alpha * len(wrong))]:
            keep[i] = True
    return keep


@given(groups(), st.floats(0.05, 1.0))
def test_rorecomp_matches_loop_and_properties(data, alpha):
    rewards, lengths, ids = data
    out = rorecomp_priority(torch.tensor(rewards, dtype=F64), torch.tensor(lengths), torch.tensor(ids), alpha)
    assert out.tolist() == loop_priority(rewards, lengths, ids, alpha)
    for g in set(ids):
        for correct in (True, False):
            rows = [i for i in range(len(ids)) if ids[i] == g and (rewards[i] > 0.5) == correct]
            chosen = [lengths[i] for i in rows if out[i]]
            left = [lengths[i] for i in rows if not out[i]]
            assert len(chosen) == math.ceil(alpha * len(rows))  # selection size
            if chosen and left:  # short correct / long incorrect
                assert (max(chosen) <= min(left)) if correct else (min(chosen) >= max(left))
    # nothing lost: priority rows + buffered rows = all rows, once each
    rest = [i for i in range(len(ids)) if not out[i]]
    step = compensation_step((), rest, capacity=max(1, len(ids)), batch_size=1)
    buffered = list(step.buffer) + list(step.compensation or ())
    assert sorted(buffered + [i for i in range(len(ids)) if out[i]]) == list(range(len(ids)))


@given(st.lists(st.lists(st.integers(0, 99), max_size=5), min_size=1, max_size=6), st.integers(1, 6), st.data())
def test_compensation_is_fifo_and_loses_nothing(pushes, capacity, data):
    batch_size = data.draw(st.integers(1, capacity))
    gates = data.draw(st.lists(st.booleans(), min_size=len(pushes), max_size=len(pushes)))
    buffer, out_items = (), []
    pushed = [x for push in pushes for x in push]
    for push, gate in zip(pushes, gates):
        step = compensation_step(buffer, push, capacity, batch_size, gate)
        assert len(step.buffer) <= max(capacity, len(buffer) + len(push))
        if step.compensation is not None:
            assert len(step.compensation) == batch_size
        out_items += list(step.discarded) + list(step.compensation or ())
        buffer = step.buffer
    assert out_items + list(buffer) == pushed  # first in, first out; nothing dropped silently


@PRESETS
def test_priority_rows_under_presets(preset):
    # advantages on the full group (UNVERIFIED reading), then the priority rows train
    fields = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=4))
    keep = rorecomp_priority(fields["rewards"], fields["mask"].sum(-1), fields["group_ids"], alpha=0.5)
    fields["mask"] = fields["mask"] & keep[:, None]
    out = Objective(preset)(**fields)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert bool((fields["logp"].grad[~keep] == 0).all())  # left-out rows get no gradient


def test_rorecomp_bad_input():
    r, ids = torch.tensor([1.0, 0.0]), torch.tensor([0, 0])
    with pytest.raises(RlobjInputError, match=r"rorecomp_priority.alpha: expected in \(0, 1\], got 0"):
        rorecomp_priority(r, torch.tensor([1, 2]), ids, alpha=0)
    with pytest.raises(RlobjInputError, match=r"lengths: expected shape \(batch\) = \(2,\), got \(3,\)"):
        rorecomp_priority(r, torch.tensor([1, 2, 3]), ids)
    with pytest.raises(RlobjInputError, match=r"lengths: rorecomp_priority expected values >= 0, got \[-1\]"):
        rorecomp_priority(r, torch.tensor([1, -1]), ids)
    with pytest.raises(RlobjInputError, match=r"compensation_step.batch_size: expected in \[1, capacity = 2\], got 3"):
        compensation_step((), [1], capacity=2, batch_size=3)
    with pytest.raises(RlobjInputError, match=r"compensation_step.capacity: expected >= 1, got 0"):
        compensation_step((), [1], capacity=0, batch_size=1)


