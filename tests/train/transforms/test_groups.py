"""Group transforms (rlobj/train/transforms/groups.py) on hand-made scored batches in a scripted world:
DAPO's dynamic sampling (refill, exact group count, round cap, state, errors), informative groups,
DARS's extra rollouts for hard groups, SELF's greedy-solved curation."""

import pytest
from train.transforms._scripted import (
    R,
    Script,
    W,
    context,
    first_batch,
    groups_of,
    make_batch,
)

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Score
from rlobj.train.transforms import (
    DARS,
    DynamicSampling,
    InformativeGroups,
    SelfCuration,
)


# --------------------------------------------------------------------------- DAPO dynamic sampling
def test_dynamic_sampling_refills_dropped_prompts_until_full():
    records = [dict(id=0, plan={0: [R, W]}),
               dict(id=1, plan={0: [R, R], 1: [W, R]}),
               dict(id=2, plan={0: [W, W], 1: [W, W], 2: [R, W]})]
    script = Script()
    batch = first_batch(script, records)
    out = DynamicSampling()(context(script), batch)
    # round 2 resamples prompts 1 and 2 (salt 1), round 3 prompt 2 (salt 2)
    assert [(c["ids"], c["salt"]) for c in script.calls] == [([1, 2], 1), ([2], 2)]
    assert groups_of(out) == [[0, 0], [1, 1], [2, 2]]
    assert out.rollout.group_ids.tolist() == [0, 0, 1, 1, 2, 2]
    assert out.rewards.tolist() == [1, 0, 0, 1, 1, 0]
    assert out.metrics == {"dynamic_sampling/rounds": 3, "dynamic_sampling/groups_kept": 3,
                           "dynamic_sampling/groups_dropped": 3, "dynamic_sampling/groups_sampled": 6,
                           "dynamic_sampling/short_steps": 0}
    assert len(batch) == 6 and batch.metrics == {}  # the input is not modified


def test_dynamic_sampling_keeps_exactly_the_requested_groups():
    records = [dict(id=i, plan={0: [R, W]}) for i in range(3)]
    script = Script()
    out = DynamicSampling(groups=2)(context(script), first_batch(script, records))
    assert script.calls == [] and groups_of(out) == [[0, 0], [1, 1]]
    # more requested than prompts: resample="dropped" falls back to all prompts once each is in;
    # round 2 brings 3 more informative groups, the first 2 are kept
    out = DynamicSampling(groups=5)(context(script), first_batch(script, [dict(r, plan={0: [R, W], 1: [W, R]})
                                                                         for r in records]))
    assert [c["ids"] for c in script.calls] == [[0, 1, 2]]
    assert groups_of(out) == [[0, 0], [1, 1], [2, 2], [0, 0], [1, 1]]
    assert out.rollout.group_ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert out.metrics["dynamic_sampling/groups_dropped"] == 1


def test_dynamic_sampling_resample_all_duplicates_prompts():
    records = [dict(id=0, plan={0: [R, W], 1: [R, W]}), dict(id=1, plan={0: [R, R], 1: [R, R], 2: [W, R]})]
    script = Script()
    out = DynamicSampling(resample="all")(context(script), first_batch(script, records))
    assert [c["ids"] for c in script.calls] == [[0, 1]]
    assert groups_of(out) == [[0, 0], [0, 0]]  # prompt 0 twice, prompt 1 never informative in time
    assert out.metrics["dynamic_sampling/rounds"] == 2


def test_dynamic_sampling_round_cap_warns_or_raises():
    records = [dict(id=0, plan={0: [R, W]}), dict(id=1, plan={0: [W, W]}), dict(id=2, plan={0: [R, R]})]
    script = Script()
    transform = DynamicSampling(max_rounds=3)
    with pytest.warns(UserWarning, match=r"only 1 of 3 requested groups .* after 3 rounds"):
        out = transform(context(script), first_batch(script, records))
    assert groups_of(out) == [[0, 0]] and len(script.calls) == 2
    assert out.metrics["dynamic_sampling/short_steps"] == 1
    assert transform.state_dict() == {"steps": 1, "rounds": 3, "short_steps": 1}
    with pytest.raises(RlobjInputError, match=r"only 1 of 3 .*max_rounds=2"):
        DynamicSampling(max_rounds=2, on_short="error")(context(script), first_batch(script, records))
    # nothing informative, no refill: an empty batch (the module skips the step)
    with pytest.warns(UserWarning, match="only 0 of 2"):
        empty = DynamicSampling(max_rounds=1)(context(script), first_batch(script, records[1:]))
    assert len(empty) == 0 and empty.metrics["dynamic_sampling/groups_kept"] == 0


def test_dynamic_sampling_state_round_trip_and_field():
    transform = DynamicSampling(max_rounds=2)
    transform.load_state_dict({"steps": 4, "rounds": 9, "short_steps": 2})
    clone = DynamicSampling()
    clone.load_state_dict(transform.state_dict())
    assert clone.state_dict() == {"steps": 4, "rounds": 9, "short_steps": 2}
    # filter on a score field: rewards differ but "acc" is flat in group 1
    rows = [dict(id=0), dict(id=0), dict(id=1), dict(id=1)]
    scores = [Score(1.0, fields={"acc": 1}), Score(0.0, fields={"acc": 0}),
              Score(1.0, fields={"acc": 1}), Score(0.5, fields={"acc": 1})]
    batch = make_batch(rows, [[5], [6], [5], [5]], [0, 0, 1, 1], scores=scores)
    with pytest.warns(UserWarning):
        out = DynamicSampling(max_rounds=1, field="acc")(context(Script()), batch)
    assert groups_of(out) == [[0, 0]]
    with pytest.raises(RlobjInputError, match="'nope'"):
        DynamicSampling(max_rounds=1, field="nope")(context(Script()), batch)


def test_dynamic_sampling_errors():
    for bad in (dict(max_rounds=0), dict(groups=0), dict(on_short="ignore"), dict(resample="new")):
        with pytest.raises(RlobjInputError):
            DynamicSampling(**bad)
    script = Script()
    records = [dict(id=0, plan={0: [R, R]})]
    unscored = script.sample(records)
    with pytest.raises(RlobjInputError, match="not been scored"):
        DynamicSampling()(context(script), unscored)

    def short_sampler(recs, n=None, salt=0, **changes):  # returns one group for two prompts
        return script.sample(recs[:1], n=n, salt=salt, **changes)

    ctx = context(script)
    ctx.sample = short_sampler
    batch = first_batch(script, [dict(id=0, plan={0: [R, R]}), dict(id=1, plan={0: [W, W]})])
    with pytest.raises(RlobjInputError, match="asked for 2 prompts and returned 1 groups"):
        DynamicSampling()(ctx, batch)


# --------------------------------------------------------------------------- plain filters
def test_informative_groups_drops_flat_groups_without_refill():
    rows = [dict(id=0)] * 2 + [dict(id=1)] * 2 + [dict(id=2)]
    scores = [Score(r) for r in (1.0, 0.0, 1.0, 1.0, 1.0)]
    batch = make_batch(rows, [[5], [6], [5], [5], [5]], [0, 0, 1, 1, 2], scores=scores)
    out = InformativeGroups()(context(Script()), batch)
    assert groups_of(out) == [[0, 0], [2]]  # the singleton stays (verl's rule)
    assert out.metrics == {"informative_groups/kept": 2, "informative_groups/dropped": 1}
    assert groups_of(InformativeGroups(keep_singletons=False)(context(Script()), batch)) == [[0, 0]]


# --------------------------------------------------------------------------- DARS
def test_dars_adds_rollouts_to_hard_groups():
    # N = 8: 2 correct -> 3 extra, 8 correct -> 0, 0 correct -> 24 (the pure function's example)
    records = [dict(id=0, plan={0: [R, R, W, W, W, W, W, W], 1000: [R]}),
               dict(id=1, plan={0: [R]}),
               dict(id=2, plan={0: [W], 1001: [W, R]})]
    script = Script(group_size=8)
    batch = first_batch(script, records)
    transform = DARS()
    assert transform.extra_rollouts(batch) == {0: 3, 1: 0, 2: 24}
    out = transform(context(script), batch)
    assert [(c["ids"], c["n"], c["salt"]) for c in script.calls] == [([0], 3, 1000), ([2], 24, 1001)]
    assert [len(g) for g in groups_of(out)] == [11, 8, 32] and groups_of(out)[2] == [2] * 32
    assert out.rollout.group_ids.tolist() == [0] * 11 + [1] * 8 + [2] * 32
    assert out.rewards[:11].sum() == 2 + 3 and out.rewards[19:].sum() == 12
    # S(p) of the first pass: 2 p (1 - p) for p = .25, 1, 0 -> (.375 + 0 + 0) / 3
    assert out.metrics == {"dars/extra_rollouts": 27, "dars/prompts_extended": 2,
                           "dars/cumulative_advantage": pytest.approx(0.125)}
    # HW with a cap of 16 rollouts: 0 correct -> min(..., 16 - 8)
    assert DARS(schedule="hw", max_rollouts=16).extra_rollouts(batch)[2] == 8


# --------------------------------------------------------------------------- SELF
def test_self_curation_drops_prompts_solved_greedily():
    records = [dict(id=0, plan={0: [R, W]}, greedy=R), dict(id=1, plan={0: [W, W]}, greedy=W),
               dict(id=2, plan={0: [R, R]}, greedy=W)]
    script = Script()
    out = SelfCuration()(context(script), first_batch(script, records))
    assert script.calls == [dict(ids=[0, 1, 2], n=1, salt=2000, greedy=True)]
    assert groups_of(out) == [[1, 1], [2, 2]]
    assert out.metrics == {"self_curation/greedy_accuracy": pytest.approx(1 / 3), "self_curation/kept": 2,
                           "self_curation/dropped": 1}
