"""The hand-made two-row turn batch and its state builder, shared by the tests of turn_returns
(tests/terms/advantages/test_turns.py) and turn_end_rewards (tests/terms/rewards/test_turns.py)."""

import torch

from rlobj.algebra.state import State

F64 = torch.float64


def state(turn_ids, turn_rewards, mask, group_ids, rewards=None):
    turn_ids = torch.tensor(turn_ids)
    return State.from_batch(logp=torch.full(turn_ids.shape, -0.5, dtype=F64), mask=torch.tensor(mask),
                            group_ids=torch.tensor(group_ids),
                            rewards=None if rewards is None else torch.tensor(rewards, dtype=F64),
                            extras={"turn_ids": turn_ids, "turn_rewards": torch.tensor(turn_rewards, dtype=F64)})


# two rows of one group. Row 0: turn 0 = tokens 0-1 (reward 1 at t=1), observation t=2 (mask False,
# turn -1), turn 1 = tokens 3-4 (reward 2 at t=4). Row 1: one turn, tokens 0-2, reward 4 at t=2; padding.
HAND = dict(turn_ids=[[0, 0, -1, 1, 1], [0, 0, 0, -1, -1]],
            turn_rewards=[[0, 1, 0, 0, 2], [0, 0, 4, 0, 0]],
            mask=[[True, True, False, True, True], [True, True, True, False, False]], group_ids=[0, 0])
