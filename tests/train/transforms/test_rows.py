"""Row transforms (rlobj/train/transforms/rows.py) on hand-made scored batches: the std filter and its
EMA state, PROF's filter on ragged step scores, RoRecomp's priority rows and compensation buffer."""

import io

import pytest
import torch
from train.transforms._scripted import (
    Script,
    context,
    groups_of,
    make_batch,
)

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Score
from rlobj.train.transforms import (
    ProfFilter,
    RoRecomp,
    StdFilter,
)


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
