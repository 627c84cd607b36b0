"""Private helpers of the multi-turn terms: the turn ids and turn rewards the sampler records,
and the per-row table of turn rewards. Shared by :mod:`rlobj.terms.rewards.turns` and
:mod:`rlobj.terms.advantages.turns` (their module docstrings describe the two extras).
"""

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.terms._common import require_extra


def _turn_inputs(state: State, by: str) -> tuple[Tensor, Tensor]:
    shape = tuple(state.mask.shape)
    turn_ids = require_extra(state, "turn_ids", by, shape, "batch seq", "int")
    turn_rewards = require_extra(state, "turn_rewards", by, shape, "batch seq", "float")
    turn_ids = torch.where(state.mask, turn_ids.long(), torch.full((), -1, dtype=torch.long))
    return turn_ids, torch.where(state.mask & (turn_ids >= 0), turn_rewards, torch.zeros((), dtype=turn_rewards.dtype))


def turn_reward_table(turn_ids: Tensor, turn_rewards: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(r, present)``: $r_{i,k}$ (``[batch, K]``, float64) and whether row $i$ has a turn $k$."""
    turns = int(turn_ids.max()) + 1 if turn_ids.numel() and int(turn_ids.max()) >= 0 else 0
    rows = turn_ids.shape[0]
    table = torch.zeros((rows, max(turns, 1)), dtype=torch.float64, device=turn_ids.device)
    present = torch.zeros((rows, max(turns, 1)), dtype=torch.bool, device=turn_ids.device)
    valid = turn_ids >= 0
    row_index = torch.arange(rows, device=turn_ids.device)[:, None].expand_as(turn_ids)
    table.index_put_((row_index[valid], turn_ids[valid]), turn_rewards[valid].double(), accumulate=True)
    present[row_index[valid], turn_ids[valid]] = True
    return table, present
