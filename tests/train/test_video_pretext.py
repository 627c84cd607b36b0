"""VideoSSR pretext generators: answers right by construction (checked against the unchanged video),
rows with ``images`` (H x W x 3 uint8 frames), and the rewards by hand."""

import numpy as np
import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train.video_pretext import (
    PERTURBATIONS,
    AnomalyGrounding,
    ObjectCounting,
    TemporalJigsaw,
    VideoSSRReward,
    count_reward,
    interval_iou,
    order_reward,
)


def _frames_ok(row, count, height, width):
    assert len(row["images"]) == count
    assert all(f.shape == (height, width, 3) and f.dtype == np.uint8 for f in row["images"])


@pytest.mark.parametrize("perturbation", sorted(PERTURBATIONS))
def test_grounding_changes_exactly_the_answered_segment(perturbation):
    source = AnomalyGrounding(perturbation, frames=24, height=16, width=16, fps=2.0, min_len=4, max_len=8, seed=3)
    for index in range(3):
        row, base = source.record(index), source.base_frames(index)
        _frames_ok(row, 24, 16, 16)
        start, end = row["segment"]
        assert 4 <= end - start <= 8 and row["answer"] == f"{start / 2:.1f}-{end / 2:.1f}"
        changed = [i for i in range(24) if not np.array_equal(row["images"][i], base[i])]
        assert changed and min(changed) >= start and max(changed) < end  # nothing outside the segment
        if perturbation == "channel_swap":
            assert all(np.array_equal(row["images"][i], base[i][..., ::-1]) for i in range(start, end))
        if perturbation in ("shuffle", "stutter_hold"):  # frames of the segment, re-ordered or held
            segment = {base[i].tobytes() for i in range(start, end)}
            assert all(row["images"][i].tobytes() in segment for i in range(start, end))
        assert source.record(index)["answer"] == row["answer"]  # deterministic per index


def test_stutter_hold_holds_evenly_spaced_frames():
    source = AnomalyGrounding("stutter_hold", frames=24, height=8, width=8, min_len=8, max_len=8, seed=1)
    row, base = source.record(0), source.base_frames(0)
    start, _ = row["segment"]
    shown = [next(k for k in range(start, start + 8) if np.array_equal(row["images"][i], base[k]))
             for i in range(start, start + 8)]
    holds = len(set(shown))
    assert 2 <= holds <= 5 and shown == sorted(shown) and shown[0] == start and shown[-1] == start + 7


def _components(mask):
    seen, count = np.zeros_like(mask), 0
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        count, stack = count + 1, [(y, x)]
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return count


def test_counting_answer_is_the_number_of_shapes_drawn():
    source = ObjectCounting(frames=30, height=48, width=48, seed=2, background="black")
    for index in range(3):
        row = source.record(index)
        _frames_ok(row, 30, 48, 48)
        marked = sorted(row["shapes"])
        drawn = [i for i, f in enumerate(row["images"]) if f.any()]
        assert drawn == marked  # shapes only on the recorded frames, 8+ frames apart per kind
        for kind in ("circle", "square", "triangle"):
            frames = [i for i in marked if row["shapes"][i]["shape"] == kind]
            assert all(b - a > 8 for a, b in zip(frames, frames[1:], strict=False))
        # separate shapes: connected components of the drawn pixels = the recorded counts
        for i in marked:
            assert _components(row["images"][i].any(axis=-1)) == row["shapes"][i]["count"]
        totals = [sum(v["count"] for v in row["shapes"].values() if v["shape"] == k)
                  for k in ("circle", "square", "triangle")]
        assert row["answer"] == ",".join(map(str, totals))


def test_jigsaw_answer_puts_the_clips_back_in_order():
    source = TemporalJigsaw(clips=3, frames=6, height=8, width=8, seed=0)
    for index in range(4):
        row, base = source.record(index), source.base_frames(index)
        _frames_ok(row, 6, 8, 8)
        clips = [row["images"][2 * p:2 * p + 2] for p in range(3)]
        for original, position in enumerate(row["answer"]):
            shown = clips[int(position) - 1]
            assert all(np.array_equal(a, b) for a, b in zip(shown, base[2 * original:2 * original + 2], strict=True))
    # by hand: shown order [2, 0, 1] -> clip 0 is at position 2, clip 1 at 3, clip 2 at 1
    row = next(source.record(i) for i in range(50) if source.record(i)["order"] == [2, 0, 1])
    assert row["answer"] == "231"


def test_rewards_by_hand():
    assert interval_iou("1.0-3.0", "2.0-4.0") == pytest.approx(1 / 3)
    assert interval_iou("2.0-4.0", "2.0-4.0") == 1.0 and interval_iou("5-6", "1-2") == 0.0
    assert interval_iou("4-2", "2-4") == 0.0 and interval_iou("soon", "2-4") == 0.0
    assert count_reward("3,1,4", "3,1,4") == 1.0
    assert count_reward("3,2,2", "3,1,4") == pytest.approx((1 + 0 + 0.5) / 3)  # |2-1|/1 -> 0; |2-4|/4 -> 0.5
    assert count_reward("3,1", "3,1,4") == 0.0
    assert order_reward("123456", "123456") == 1.0
    assert order_reward("213456", "123456") == pytest.approx(1 - 2 / 18)
    assert order_reward("654321", "123456") == 0.0 and order_reward("112", "123") == 0.0
    reward = VideoSSRReward()
    rows = [AnomalyGrounding(seed=0).record(0), ObjectCounting(seed=0).record(0), TemporalJigsaw(seed=0).record(0)]
    assert [reward(r["answer"], r) for r in rows] == [1.0, 1.0, 1.0]
    assert reward("0.0-0.5", rows[0]) < 1.0 and reward("0,0,0", rows[1]) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(KeyError, match="task"):
        reward("1", {"answer": "1"})


def test_bad_settings_are_named():
    with pytest.raises(RlobjInputError, match="perturbation"):
        AnomalyGrounding("zoom")
    with pytest.raises(RlobjInputError, match="clips"):
        TemporalJigsaw(clips=5, frames=48)
    with pytest.raises(RlobjInputError, match="background"):
        ObjectCounting(background="video.mp4").record(0)
