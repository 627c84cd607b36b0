"""Batch transforms (rlobj/train/transforms): each transform on hand-made scored batches, with a
real StepContext whose ``sample`` follows a script and whose ``score`` checks an answer token;
DAPO refill and its round cap; state round trips; build_transforms and its errors; every
BATCH_FUNCTIONS name reachable from YAML.
"""

import inspect
import io
import warnings

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.registry import BATCH_FUNCTIONS
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.stages import Batch, Score, StepContext, Transform
from rlobj.train.transforms import (
    BATCH_FUNCTION_TRANSFORMS,
    DARS,
    TRANSFORMS,
    CallableTransform,
    DynamicSampling,
    InformativeGroups,
    ProfFilter,
    RoRecomp,
    SelfCuration,
    StdFilter,
    build_transforms,
    transform_for_batch_function,
)

ANSWER, WRONG = 5, 6


# --------------------------------------------------------------------------- a small scripted world
def make_batch(records, responses, group_ids, scores=None, extras=None) -> Batch:
    """One row per response (a list of token ids); prompt of a record = [10 + id]."""
    rollout = batch_from_rows([torch.tensor([10 + r["id"]]) for r in records],
                              [torch.tensor(t) for t in responses],
                              [torch.full((len(t),), -0.5) for t in responses], group_ids,
                              [True] * len(responses), pad_token_id=0)
    return Batch(rollout=rollout, records=list(records), scores=scores, extras=extras or {})


def score_rows(batch: Batch) -> list[Score]:
    """Reward 1 iff the response starts with the record's answer token; fields: acc, step_scores."""
    out = []
    for b, record in enumerate(batch.records):
        first = int(batch.rollout.response_ids[b, 0])
        reward = float(first == record.get("answer", ANSWER))
        fields = {"acc": reward}
        if "steps" in record:
            fields["step_scores"] = record["steps"][b % len(record["steps"])]
        out.append(Score(reward=reward, fields=fields))
    return out


class Script:
    """``sample(records, n, salt, **changes)``: record ``r`` answers with ``r["plan"][salt]`` (a list of
    right/wrong flags, cycled to ``n``), or ``r["greedy"]`` when greedy; every call is logged."""

    def __init__(self, group_size=2):
        self.group_size, self.calls = group_size, []

    def sample(self, records, n=None, salt=0, **changes):
        n = self.group_size if n is None else n
        self.calls.append(dict(ids=[r["id"] for r in records], n=n, salt=salt, **changes))
        rows, responses, groups = [], [], []
        for j, record in enumerate(records):
            flags = [record["greedy"]] if changes.get("greedy") else record["plan"].get(salt, [False])
            for k in range(n):
                right = flags[k % len(flags)]
                length = 1 + (k % 3)
                responses.append([ANSWER if right else WRONG] + [7] * (length - 1))
                rows.append(record)
                groups.append(j)
        return make_batch(rows, responses, groups, extras={"off_policy": torch.zeros(len(rows), dtype=torch.bool)})

    def score(self, batch):
        return Batch(rollout=batch.rollout, records=batch.records, scores=score_rows(batch), extras=batch.extras,
                     metrics=batch.metrics)


def context(script: Script, step: int = 0) -> StepContext:
    return StepContext(step=step, rl_updates=0, seed=0, rank=0, world_size=1, group_size=script.group_size,
                       engine=None, models=None, sample=script.sample, score=script.score,
                       encode=lambda text: [], decode=lambda rollout: [], pad_token_id=0)


def first_batch(script: Script, records) -> Batch:
    batch = script.score(script.sample(records, salt=0))
    script.calls.clear()
    return batch


def groups_of(batch: Batch) -> list[list[int]]:
    """Record ids per group (groups in order), checking that each group's rows are contiguous."""
    ids = batch.rollout.group_ids.tolist()
    order = list(dict.fromkeys(ids))
    starts = [ids.index(g) for g in order]
    for g, start in zip(order, starts):
        assert ids[start:start + ids.count(g)] == [g] * ids.count(g), f"group {g} is not contiguous: {ids}"
    return [[batch.records[i]["id"] for i in range(len(ids)) if ids[i] == g] for g in order]


R, W = True, False


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


def test_std_filter_values_and_ema_state():
    # Bessel stds: group 0 .707107, group 1 0, group 2 .141421; mean .282843 (as in tests/rollout/test_filters.py)
    rows = [dict(id=g) for g in (0, 0, 1, 1, 2, 2)]
    rewards = [0.0, 1.0, 0.5, 0.5, 0.2, 0.4]
    batch = make_batch(rows, [[5]] * 6, [0, 0, 1, 1, 2, 2], scores=[Score(r) for r in rewards])
    transform = StdFilter()
    early = transform(context(Script(), step=3), batch)  # before ema_start: no EMA, all kept
    assert len(early) == 6 and transform.ema is None and "std_filter/ema" not in early.metrics
    kept = transform(context(Script(), step=6), batch)  # first EMA: the plain mean; not filtering yet
    assert len(kept) == 6 and transform.ema == pytest.approx(0.282843, abs=1e-6)
    transform.load_state_dict({"ema": 0.3})
    out = transform(context(Script(), step=11), batch)
    # EMA = .99 * .3 + .01 * .282843 = .299828; threshold .149914 keeps group 0 only
    assert groups_of(out) == [[0, 0]]
    assert transform.ema == pytest.approx(0.99 * 0.3 + 0.01 * 0.282843, abs=1e-8)
    assert out.metrics["std_filter/kept"] == 1 and out.metrics["std_filter/dropped"] == 2
    clone = StdFilter()
    clone.load_state_dict(transform.state_dict())
    assert clone.ema == transform.ema and StdFilter().state_dict() == {"ema": None}
    with pytest.raises(RlobjInputError, match="beta"):
        StdFilter(beta=-1)


def test_prof_filter_reads_ragged_step_scores_from_the_scorer():
    # one group of 6: correct PRM means .9, .2, .6; wrong means .1, .8, .5 (as the pure function's example)
    steps = [[0.9], [0.1, 0.3], [0.6], [0.1], [0.8, 0.8, 0.8], [0.4, 0.6]]
    rewards = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    scores = [Score(r, fields={"prm": s}) for r, s in zip(rewards, steps)]
    batch = make_batch([dict(id=0)] * 6, [[5]] * 6, [0] * 6, scores=scores)
    out = ProfFilter(step_scores_field="prm", keep=4)(context(Script()), batch)
    assert [s.fields["prm"] for s in out.scores] == [[0.9], [0.6], [0.1], [0.4, 0.6]]
    assert out.metrics["prof/kept"] == 4 and out.metrics["prof/dropped"] == 2
    # consistency of the kept rows: .9, .6, -.1, -.5 -> mean .225
    assert out.metrics["prof/consistency"] == pytest.approx(0.225)
    # pos variant: the correct side is the same, the wrong side random but reproducible per (seed, step)
    pos = [ProfFilter(step_scores_field="prm", variant="pos")(context(Script(), step=3), batch) for _ in range(2)]
    assert [s.fields["prm"] for s in pos[0].scores][:2] == [[0.9], [0.6]]
    assert [s.fields["prm"] for s in pos[0].scores] == [s.fields["prm"] for s in pos[1].scores]
    # correctness from a score field instead of the reward
    flags = [Score(1.0 - r, fields={"prm": s, "ok": bool(r)}) for r, s in zip(rewards, steps)]
    same = ProfFilter(step_scores_field="prm", correct_field="ok")(context(Script()), make_batch(
        [dict(id=0)] * 6, [[5]] * 6, [0] * 6, scores=flags))
    assert [s.fields["prm"] for s in same.scores] == [[0.9], [0.6], [0.1], [0.4, 0.6]]


def test_prof_filter_errors():
    batch = make_batch([dict(id=0)] * 2, [[5], [6]], [0, 0], scores=[Score(1.0), Score(0.0)])
    with pytest.raises(RlobjInputError, match="no score field 'step_scores'"):
        ProfFilter(keep=2)(context(Script()), batch)
    small = make_batch([dict(id=0)] * 2, [[5], [6]], [0, 0],
                       scores=[Score(1.0, fields={"step_scores": [1.0]}), Score(0.0, fields={"step_scores": [0.0]})])
    with pytest.raises(RlobjInputError, match="keep=4 .* groups \\[0\\]"):
        ProfFilter()(context(Script()), small)
    empty = make_batch([dict(id=0)] * 2, [[5], [6]], [0, 0],
                       scores=[Score(1.0, fields={"step_scores": []}), Score(0.0, fields={"step_scores": [0.0]})])
    with pytest.raises(RlobjInputError, match="empty for rows \\[0\\]"):
        ProfFilter(keep=2)(context(Script()), empty)


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


# --------------------------------------------------------------------------- RoRecomp
def _recomp_batch(step_tag=0):
    # correct lengths 5, 3, 9 -> 2 shortest (rows 0, 1); wrong lengths 4, 7 -> 1 longest (row 4)
    lengths, rewards = [5, 3, 9, 4, 7], [1.0, 1.0, 1.0, 0.0, 0.0]
    responses = [[5 if r else 6] + [step_tag + 7] * (n - 1) for r, n in zip(rewards, lengths)]
    return make_batch([dict(id=0)] * 5, responses, [0] * 5, scores=[Score(r) for r in rewards])


def test_rorecomp_priority_rows():
    out = RoRecomp()(context(Script()), _recomp_batch())
    assert out.rollout.response_lengths.tolist() == [5, 3, 7]
    assert out.metrics == {"rorecomp/priority": 3, "rorecomp/deferred": 2, "rorecomp/compensation": 0}
    assert "rorecomp_compensation" not in out.extras
    scores = [Score(s.reward, fields={"calls": n}) for s, n in zip(_recomp_batch().scores, [1, 2, 3, 4, 5])]
    base = _recomp_batch()
    by_field = RoRecomp(length_field="calls")(context(Script()), Batch(rollout=base.rollout, records=base.records,
                                                                       scores=scores))
    assert [s.fields["calls"] for s in by_field.scores] == [1, 2, 5]


def test_rorecomp_compensation_buffer_and_state_round_trip():
    transform = RoRecomp(capacity=3, batch_size=2)
    first = transform(context(Script(), step=0), _recomp_batch(step_tag=0))
    assert len(first) == 3 and first.extras["rorecomp_compensation"].tolist() == [False] * 3
    assert first.metrics["rorecomp/buffer"] == 2
    state = transform.state_dict()
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    restored = RoRecomp(capacity=3, batch_size=2)
    restored.load_state_dict(torch.load(stream, weights_only=True))
    second = restored(context(Script(), step=1), _recomp_batch(step_tag=1))
    # buffer 2 + 2 new = 4 >= 3: the 2 oldest (step 0's rows 2 and 3) come back as one group
    assert len(second) == 5 and second.metrics["rorecomp/compensation"] == 2
    assert first.on_policy and not second.on_policy  # replayed rows: the trainer recomputes logp_old
    assert second.extras["rorecomp_compensation"].tolist() == [False] * 3 + [True] * 2
    assert second.rollout.group_ids.tolist() == [0, 0, 0, 1, 1]
    comp = second.select([3, 4])
    assert comp.rollout.response_lengths.tolist() == [9, 4] and comp.rewards.tolist() == [1.0, 0.0]
    assert comp.rollout.response_ids[0, 1] == 7  # step 0's tokens
    assert second.metrics["rorecomp/buffer"] == 2 and len(restored.buffer) == 2
    # gate closed (p_comp = 0): the buffer is cut back to capacity, nothing appended
    closed = RoRecomp(capacity=3, batch_size=2, p_comp=0.0)
    closed.load_state_dict(state)
    assert len(closed(context(Script(), step=1), _recomp_batch(step_tag=1))) == 3 and len(closed.buffer) == 3
    with pytest.raises(RlobjInputError, match="batch_size"):
        RoRecomp(capacity=2, batch_size=3)


def test_rorecomp_buffer_stays_bounded():
    # 2 deferred rows a step, 1 replayed: without a bound the buffer would grow by 1 a step
    transform = RoRecomp(capacity=2, batch_size=1)
    for step in range(5):
        out = transform(context(Script(), step=step), _recomp_batch(step_tag=step))
        assert len(transform.buffer) <= 2 and out.metrics["rorecomp/buffer"] == len(transform.buffer)
    # step 0: 2 rows, 2 >= capacity: 1 replayed, 1 left; later steps: 1 + 2 -> 1 replayed, 2 left, then
    # 2 + 2 -> 1 replayed, 3 left -> the oldest discarded
    assert out.metrics["rorecomp/compensation"] == 1 and out.metrics["rorecomp/discarded"] == 1
    assert [origin for origin, _ in transform.buffer] == ["4:0", "4:0"]


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


# --------------------------------------------------------------------------- composition
def test_transforms_compose_in_order():
    records = [dict(id=0, plan={0: [R, W]}, greedy=W), dict(id=1, plan={0: [R, R], 1: [R, W]}, greedy=R)]
    script = Script()
    batch = first_batch(script, records)
    ctx = context(script)
    for transform in build_transforms(["dynamic_sampling", "self_curation"]):
        batch = transform(ctx, batch)
    assert groups_of(batch) == [[0, 0]]
    assert batch.metrics["dynamic_sampling/rounds"] == 2 and batch.metrics["self_curation/kept"] == 1


# --------------------------------------------------------------------------- registry and YAML
def halve(ctx, batch, keep=1):
    """A transform as a function: the first ``keep`` rows."""
    return batch.select(list(range(keep)))


def test_build_transforms_from_names_dicts_and_paths(tmp_path, monkeypatch):
    (tmp_path / "my_transforms.py").write_text(
        "from rlobj.train.stages import Transform\n"
        "class Reverse(Transform):\n"
        "    def __init__(self, tag: str = 'x'):\n"
        "        self.tag = tag\n"
        "    def __call__(self, ctx, batch):\n"
        "        return batch.select(list(range(len(batch)))[::-1])\n"
        "def first(ctx, batch, keep=1):\n"
        "    return batch.select(list(range(keep)))\n"
        "class NotATransform:\n"
        "    pass\n"
        "VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    given = StdFilter(beta=0.1)
    built = build_transforms(["dynamic_sampling", {"std_filter": {"beta": 0.9}}, {"dars": None}, "RoRecomp",
                              given, "my_transforms.Reverse", {"my_transforms.Reverse": {"tag": "y"}},
                              {"my_transforms.first": {"keep": 2}},
                              {"class_path": "rlobj.train.transforms.ProfFilter", "init_args": {"keep": 2}}, halve])
    assert [type(t).__name__ for t in built] == ["DynamicSampling", "StdFilter", "DARS", "RoRecomp", "StdFilter",
                                                 "Reverse", "Reverse", "CallableTransform", "ProfFilter",
                                                 "CallableTransform"]
    assert built[1].beta == 0.9 and built[4] is given and built[6].tag == "y" and built[8].keep == 2
    assert all(isinstance(t, Transform) for t in built)
    batch = make_batch([dict(id=0)] * 3, [[5], [6], [7]], [0, 0, 0], scores=[Score(1.0), Score(0.0), Score(0.0)])
    assert len(built[7](context(Script()), batch)) == 2 and len(built[9](context(Script()), batch)) == 1
    assert build_transforms(None) == [] and len(build_transforms("std_filter")) == 1
    assert isinstance(build_transforms({"informative_groups": {}})[0], InformativeGroups)
    assert isinstance(CallableTransform(halve), Transform)


@pytest.mark.parametrize("item, message", [
    ("dynamic_sampln", "unknown transform 'dynamic_sampln'. Did you mean 'dynamic_sampling'"),
    ("std_filtre", "Did you mean 'std_filter'"),
    ("no_such_module_xyz.Thing", "cannot import 'no_such_module_xyz.Thing'"),
    ("collections.OrderedDict", "not a rlobj.train.stages.Transform subclass"),
    ("math.pi", "neither a Transform subclass nor a callable"),
    ({"std_filter": {"betta": 1.0}}, "cannot build 'std_filter' .*'betta'.*its arguments are \\['beta'"),
    ({"std_filter": {}, "dars": {}}, "exactly one key"),
    ({"std_filter": [1]}, "must be a mapping"),
    (3, "expected a Transform, a name"),
])
def test_build_transforms_errors(item, message):
    with pytest.raises(RlobjInputError, match=message) as error:
        build_transforms(["std_filter", item])
    assert "transforms[1]" in str(error.value)


def test_bad_callable_output():
    transform = build_transforms([lambda ctx, batch: None])[0]
    batch = make_batch([dict(id=0)], [[5]], [0], scores=[Score(1.0)])
    with pytest.raises(RlobjInputError, match="returned NoneType, expected a Batch"):
        transform(context(Script()), batch)


def test_every_batch_function_is_reachable_from_yaml():
    assert set(BATCH_FUNCTION_TRANSFORMS) == set(BATCH_FUNCTIONS)
    for name, function in BATCH_FUNCTIONS.items():
        registered = transform_for_batch_function(name)
        cls = TRANSFORMS[registered]
        assert issubclass(cls, Transform)
        source = inspect.getsource(inspect.getmodule(cls))
        assert f"{function.__name__}(" in source, f"{cls.__name__} does not call {name}"
        assert isinstance(build_transforms([registered])[0], cls)
    with pytest.raises(RlobjInputError, match="Did you mean 'std_filter'"):
        transform_for_batch_function("std_filtr")


def test_lightning_cli_style_config_builds_transforms():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--transforms", type=list[Transform])
    config = parser.parse_string(
        "transforms:\n"
        "  - class_path: rlobj.train.transforms.DynamicSampling\n"
        "    init_args: {max_rounds: 4, on_short: error}\n"
        "  - class_path: rlobj.train.transforms.StdFilter\n"
        "    init_args: {beta: 0.9}\n")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    built = instantiate(config).transforms
    assert isinstance(built[0], DynamicSampling) and built[0].max_rounds == 4 and built[0].on_short == "error"
    assert isinstance(built[1], StdFilter) and built[1].beta == 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in TRANSFORMS.values():  # every transform builds with its defaults
            assert isinstance(cls(), Transform)
