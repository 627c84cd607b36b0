"""Rollout-batch metrics (rlobj/train/metrics.py): each value against a direct computation on a
synthetic batch, the sampled-token mask of the mismatch, and one-row-per-step logging."""

import math

import pytest
import torch

from rlobj.train.metrics import batch_metrics, log_step_row

from ._helpers import synthetic_rollout, tiny_module


def test_values_by_hand_on_a_synthetic_batch():
    module = tiny_module()
    rollout = synthetic_rollout(module, groups=2, group_size=4, seed=3)
    rewards = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.25])
    logp_old = rollout.logp_rollout + 0.1 * rollout.response_mask  # off by 0.1 on every response token
    out = batch_metrics(rollout, rewards, logp_old, pass_threshold=0.5)
    lengths = rollout.response_mask.sum(-1).tolist()
    assert out["reward/mean"] == pytest.approx(3.75 / 8)
    assert out["reward/std"] == pytest.approx(float(torch.tensor(rewards.tolist()).std()))
    assert out["pass_rate"] == pytest.approx(4 / 8)  # 1, 0.5, 1, 1 reach the threshold
    assert out["response/length_mean"] == pytest.approx(sum(lengths) / 8)
    assert out["response/length_max"] == max(lengths)
    assert out["response/truncated_fraction"] == pytest.approx(sum(rollout.truncated.tolist()) / 8)
    assert out["mismatch/logp_abs"] == pytest.approx(0.1, rel=1e-5)


def test_mismatch_only_over_the_sampled_tokens():
    module = tiny_module()
    rollout = synthetic_rollout(module, groups=1, group_size=4, seed=1)
    sampled = rollout.response_mask.clone()
    sampled[:, 0] = False  # e.g. observation tokens of a multi-turn batch
    logp_old = rollout.logp_rollout.clone()
    logp_old[:, 0] += 5.0  # a large gap only where nothing was sampled
    out = batch_metrics(rollout, torch.ones(4), logp_old, 1.0, sampled=sampled)
    assert out["mismatch/logp_abs"] == 0.0
    assert batch_metrics(rollout, torch.ones(4), logp_old, 1.0)["mismatch/logp_abs"] > 0.0
    one = batch_metrics(synthetic_rollout(module, groups=1, group_size=1), torch.ones(1), logp_old[:1], 1.0)
    assert one["reward/std"] == 0.0 and not math.isnan(one["reward/std"])


class Recorder:
    def __init__(self):
        self.rows = []

    def log_metrics(self, values, step):
        self.rows.append((step, values))


class Trainer:
    def __init__(self, loggers, rank=0):
        self.loggers, self.global_rank, self.global_step, self.current_epoch = loggers, rank, 7, 2
        self.fit_loop = None


class Module:
    def __init__(self, trainer):
        self._trainer = trainer


def test_log_step_row_sends_one_row_from_rank_zero_only():
    first, second = Recorder(), Recorder()
    log_step_row(Module(Trainer([first, second])), {"loss": 1.5})
    assert first.rows == second.rows == [(7, {"loss": 1.5, "epoch": 2.0})]
    other = Recorder()
    log_step_row(Module(Trainer([other], rank=1)), {"loss": 1.5})
    log_step_row(Module(None), {"loss": 1.5})  # no trainer: nothing to do
    assert other.rows == []
