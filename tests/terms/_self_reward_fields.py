"""Batch fields shared by the LaSeR tests (tests/terms/test_auxiliary.py: the self-reward loss;
tests/terms/advantages/test_self_reward.py: the advantage mixer)."""

import torch

F64 = torch.float64


def fields_of(rewards, probe, truncated=None, lengths=None, group_ids=None):
    n = len(rewards)
    lengths = lengths or [2] * n
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    extras = {"self_reward_logp": probe if isinstance(probe, torch.Tensor) else torch.tensor(probe, dtype=F64)}
    if truncated is not None:
        extras["truncated"] = torch.tensor(truncated)
    return dict(logp=torch.full(mask.shape, -0.5, dtype=F64), mask=mask, rewards=torch.tensor(rewards, dtype=F64),
                group_ids=torch.tensor(group_ids if group_ids is not None else [0] * n), extras=extras)
