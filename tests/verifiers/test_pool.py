"""The verifier pool: per-item timeouts, crash/garbage containment, results keyed by index."""

import pickle
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import pool_test_verifiers as helpers

from rlobj.verifiers import ExactMatch, ScoreResult, VerifierPool, score_batch


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2, timeout=1.5, memory_limit_mb=1024) as shared_pool:
        yield shared_pool


def test_results_keyed_by_index_when_completion_order_differs(pool):
    # Item 0 is the slowest, so it finishes after the later ones: rewards must stay in input order.
    delays = [0.6, 0.0, 0.3, 0.0, 0.15, 0.0]
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    samples = [
        {"delay": delay, "value": value} for delay, value in zip(delays, values, strict=True)
    ]
    result = pool.score(helpers.sleeps_then_echoes, [""] * len(samples), samples)
    assert result.rewards == tuple(values)
    assert result.statuses == ("ok",) * len(values)


@settings(max_examples=5)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.01, 0.05]), st.floats(0, 1)), min_size=1, max_size=6)
)
def test_random_delays_keep_rewards_on_their_samples(pool, items):
    samples = [{"delay": delay, "value": value} for delay, value in items]
    result = pool.score(helpers.sleeps_then_echoes, [""] * len(samples), samples)
    assert result.rewards == tuple(value for _, value in items)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("sleep_forever", "timeout"),
        ("raise", "error"),
        ("allocate_10gb", "error"),
        ("nan", "invalid"),
        ("string", "invalid"),
        ("out_of_range", "invalid"),
        ("unpicklable", "invalid"),
        ("kill", "error"),
        ("exit", "error"),
    ],
)
def test_failure_scores_zero_is_counted_and_pool_keeps_working(pool, kind, status):
    samples = [
        {"kind": "good", "answer": "a"},
        {"kind": kind, "answer": "a"},
        {"kind": "good", "answer": "a"},
        {"kind": "good", "answer": "b"},
    ]
    result = pool.score(helpers.misbehaves_by_kind, ["a", "a", "a", "a"], samples)
    assert result.rewards == (1.0, 0.0, 1.0, 0.0)
    assert result.statuses[1] == status
    assert result.counts[status] == 1
    assert result.statuses[0] == result.statuses[2] == result.statuses[3] == "ok"
    # the pool is still usable afterwards
    again = pool.score(ExactMatch(), ["4", "5"], [{"answer": "4"}, {"answer": "4"}])
    assert again.rewards == (1.0, 0.0) and again.counts["ok"] == 2


def test_sleep_raise_and_10gb_in_one_batch(pool):
    kinds = ["sleep_forever", "raise", "allocate_10gb", "good"]
    samples = [{"kind": kind, "answer": "x"} for kind in kinds]
    result = pool.score(helpers.misbehaves_by_kind, ["x"] * 4, samples)
    assert result.rewards == (0.0, 0.0, 0.0, 1.0)
    assert result.statuses == ("timeout", "error", "error", "ok")
    assert "MemoryError" in result.messages[2]
    metrics = result.metrics()
    assert metrics["verifier/timeouts"] == 1.0 and metrics["verifier/errors"] == 2.0
    assert metrics["verifier/failed_fraction"] == 0.75


def test_timeout_of_one_call_can_be_shortened(pool):
    result = pool.score(
        helpers.sleeps_then_echoes, [""], [{"delay": 0.8, "value": 1.0}], timeout=0.2
    )
    assert result.statuses == ("timeout",) and result.rewards == (0.0,)


def test_score_batch_and_empty_batch():
    result = score_batch(ExactMatch(), ["7", "8", "7"], [{"answer": "7"}] * 3, timeout=5, workers=1)
    assert result.rewards == (1.0, 0.0, 1.0)
    with VerifierPool(workers=1) as fresh:
        assert fresh.score(ExactMatch(), [], []).rewards == ()


def test_unpicklable_sample_is_an_error_for_that_item_only(pool):
    samples = [{"answer": "1"}, {"answer": "1", "callback": lambda: None}]
    result = pool.score(ExactMatch(), ["1", "1"], samples)
    assert result.rewards == (1.0, 0.0)
    assert result.statuses == ("ok", "error") and "pickled" in result.messages[1]


def test_bad_arguments_raise_clear_errors(pool):
    with pytest.raises(ValueError, match="'completions' and 'samples'.*2 and 1"):
        pool.score(ExactMatch(), ["a", "b"], [{"answer": "a"}])
    with pytest.raises(TypeError, match="cannot be pickled"):
        pool.score(lambda completion, sample: 1.0, ["a"], [{"answer": "a"}])
    with pytest.raises(TypeError, match="'verifier' must be callable"):
        pool.score("not a verifier", ["a"], [{}])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'workers' must be an int >= 1"):
        VerifierPool(workers=0)
    with pytest.raises(ValueError, match="'timeout' must be a positive"):
        VerifierPool(timeout=-1)
    with pytest.raises(ValueError, match="'reward_range'"):
        VerifierPool(reward_range=(1.0, 0.0))
    closed = VerifierPool(workers=1)
    closed.close()
    with pytest.raises(RuntimeError, match="after close"):
        closed.score(ExactMatch(), ["a"], [{"answer": "a"}])


def test_wider_reward_range_accepts_what_default_rejects():
    with VerifierPool(workers=1, reward_range=(-10.0, 10.0)) as wide:
        result = wide.score(helpers.returns_out_of_range, [""], [{}])
    assert result.rewards == (7.0,) and result.statuses == ("ok",)


def test_score_result_counts_and_pickles():
    result = ScoreResult(
        (1.0, 0.0, 0.0), ("ok", "invalid", "invalid"), ("", "nan", "nan"), (0.1, 0.2, 0.3)
    )
    assert result.counts == {"ok": 1, "timeout": 0, "error": 0, "invalid": 2}
    assert pickle.loads(pickle.dumps(result)) == result
    assert result.metrics(prefix="r/")["r/seconds_mean"] == pytest.approx(0.2)


def test_crashed_workers_are_reported_with_their_exit_status(pool):
    samples = [{"kind": "exit", "answer": "a"}, {"kind": "kill", "answer": "a"}]
    result = pool.score(helpers.misbehaves_by_kind, ["a", "a"], samples)
    assert result.statuses == ("error", "error")
    assert result.messages[0] == "worker process died (exit code 3)", result.messages
    assert result.messages[1] == "worker process died (exit code -9)", result.messages
