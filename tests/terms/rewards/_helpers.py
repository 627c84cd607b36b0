"""The state builder shared by the reward terms' test modules (tests/terms/rewards/test_*.py)."""

import torch

from rlobj.algebra.state import State

F64 = torch.float64


def state_of(rewards, group_ids=None, lengths=None, width=4, extras=None, **fields):
    n = len(rewards)
    lengths = lengths or [width] * n
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return State.from_batch(logp=torch.full((n, width), -0.5, dtype=F64), mask=mask,
                            rewards=torch.tensor(rewards, dtype=F64),
                            group_ids=torch.tensor(group_ids if group_ids is not None else [0] * n),
                            extras=extras or {}, **fields)
