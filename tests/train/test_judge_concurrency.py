"""Judges off the caller's thread: a hard wall-clock timeout per judge batch, and judges that run
while the plain reward functions run. The slow judge is the real tiny judge whose engine sleeps
before each call (a stand-in for a judge server that is slow or stuck)."""

import math
import time

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train import RewardFunctions
from rlobj.train.judges import PointwiseJudge

RECORDS = [{"prompt": f"{a}+{a}=", "answer": str(2 * a), "completion": str(2 * a)} for a in range(1, 5)]


class SleepyEngine:
    """The judge's real engine, sleeping ``seconds`` before each generate call."""

    def __init__(self, engine, seconds: float):
        self.engine, self.seconds, self.calls = engine, seconds, 0

    def generate(self, *args, **kwargs):
        self.calls += 1
        time.sleep(self.seconds)
        return self.engine.generate(*args, **kwargs)


def slow_judge(path: str, seconds: float, **kwargs) -> tuple[PointwiseJudge, SleepyEngine]:
    judge = PointwiseJudge(path, max_new_tokens=2, **kwargs)
    judge.load()
    sleepy = SleepyEngine(judge.judge.engine, seconds)
    judge.judge.engine = sleepy
    return judge, sleepy


def test_a_stuck_judge_batch_ends_at_its_wall_clock_timeout_with_counted_timeouts(tiny_judges):
    judge, sleepy = slow_judge(tiny_judges["seven"], 3.0, batch_size=2, timeout=0.5, name="slow")
    began = time.monotonic()
    scores, metrics = judge.score_texts(["2", "4", "6", "8"], RECORDS)
    elapsed = time.monotonic() - began
    assert elapsed < 2.0, f"the judge held the caller {elapsed:.2f}s past a 0.5s budget"  # not 3s (one call)
    assert [s.reward for s in scores] == [0.0] * 4 and [s.fields["scored"] for s in scores] == [0.0] * 4
    assert metrics["slow/timeouts"] == 4.0 and metrics["slow/failed_fraction"] == 1.0
    assert math.isnan(metrics["slow/mean"])
    assert "still running (abandoned)" in judge.last_notes[0] and "not started" in judge.last_notes[2]
    # the abandoned chunk finishes on the worker; once it has, a batch within budget is scored
    sleepy.seconds = 0.0
    time.sleep(3.5)
    assert sleepy.calls == 1  # the second chunk was cancelled, never run
    scores, metrics = judge.score_texts(["2", "4"], RECORDS[:2])
    assert metrics["slow/timeouts"] == 0.0 and [s.reward for s in scores] == pytest.approx([0.7, 0.7])
    judge.close()


def test_without_a_timeout_a_slow_judge_is_waited_for(tiny_judges):
    judge, _ = slow_judge(tiny_judges["seven"], 0.3, batch_size=2, name="patient")
    scores, metrics = judge.score_texts(["2", "4", "6"], RECORDS[:3])
    assert metrics["patient/timeouts"] == 0.0 and [s.reward for s in scores] == pytest.approx([0.7] * 3)
    judge.close()


def test_judges_overlap_the_plain_reward_functions_with_the_same_result(tiny_judges):
    from tests.train._helpers import tiny_module

    def slow_length(completions, **kwargs):
        time.sleep(1.0)
        return [float(len(c)) for c in completions]

    results, seconds = {}, {}
    for overlap in (False, True):
        judge, _ = slow_judge(tiny_judges["seven"], 1.0, batch_size=64, name="judge")
        scorer = RewardFunctions([judge, slow_length], weights=[2.0, 1.0], overlap=overlap)
        module = tiny_module(scorer=scorer, rollout={"max_new_tokens": 3})
        records = [{"prompt": "1+1=", "answer": "2"}]
        began = time.monotonic()
        metrics = module.rl_update(records, step=0)
        seconds[overlap] = time.monotonic() - began
        results[overlap] = (metrics["reward/mean"], metrics["reward_funcs/judge/mean"])
        assert metrics["judge/timeouts"] == 0.0 and metrics["reward_funcs/judge/mean"] == pytest.approx(0.7)
        judge.close()
    assert results[True] == results[False]  # same rewards whichever way they ran
    assert seconds[False] >= 2.0  # judge's 1s sleep, then the function's 1s sleep
    assert seconds[True] < seconds[False] - 0.5, seconds  # the two sleeps overlapped


def test_a_judge_timeout_inside_a_training_step_gives_no_reward_and_the_step_goes_on(tiny_judges):
    from tests.train._helpers import tiny_module

    judge, _ = slow_judge(tiny_judges["seven"], 3.0, timeout=0.3, name="stuck")
    module = tiny_module(scorer=RewardFunctions([judge, lambda completions, **kw: [1.0] * len(completions)]),
                         rollout={"max_new_tokens": 3})
    began = time.monotonic()
    metrics = module.rl_update([{"prompt": "1+1=", "answer": "2"}], step=0)
    assert time.monotonic() - began < 2.5
    assert metrics["stuck/timeouts"] == 4.0 and metrics["reward_funcs/stuck/none_fraction"] == 1.0
    assert metrics["reward/mean"] == 1.0 and math.isfinite(metrics["loss"])
    judge.close()


def test_bad_concurrency_is_an_error_naming_it(tiny_judges):
    with pytest.raises(RlobjInputError, match="PointwiseJudge.concurrency: expected an int >= 1"):
        PointwiseJudge(tiny_judges["seven"], concurrency=0)
    with pytest.raises(RlobjInputError, match="RewardFunctions.overlap"):
        RewardFunctions([lambda completions, **kw: [0.0] * len(completions)], overlap="yes")


def test_concurrent_chunks_give_the_serial_scores(tiny_judges):
    completions = ["2", "4", "6", "8"]
    serial = PointwiseJudge(tiny_judges["seven"], max_new_tokens=2, batch_size=1).score_texts(completions, RECORDS)
    both = PointwiseJudge(tiny_judges["seven"], max_new_tokens=2, batch_size=1, concurrency=2)
    assert [s.reward for s in both.score_texts(completions, RECORDS)[0]] == [s.reward for s in serial[0]]
    both.close()
