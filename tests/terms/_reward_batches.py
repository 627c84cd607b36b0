"""Hypothesis batches of grouped rewards and the states built from them, shared by the tests of the
reward shaping terms (tests/terms/rewards/test_shaping.py) and of the zero-variance group mask
(tests/terms/masks/test_groups.py)."""

import torch
from hypothesis import strategies as st

from rlobj.algebra.state import State

F64 = torch.float64
REWARDS = st.one_of(st.sampled_from([0.0, 1.0, 0.5, -1.0, 0.7]), st.floats(-20, 20, allow_nan=False, allow_subnormal=False))


@st.composite
def batches(draw, min_size=1, binary=False, constant_groups=False):
    sizes = draw(st.lists(st.integers(min_size, 6), min_size=1, max_size=4))
    ids = draw(st.lists(st.integers(-3, 30), min_size=len(sizes), max_size=len(sizes), unique=True))
    gids = [g for g, n in zip(ids, sizes, strict=True) for _ in range(n)]
    order = draw(st.permutations(range(len(gids))))
    gids = [gids[i] for i in order]
    seq = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.integers(0, seq), min_size=len(gids), max_size=len(gids)))
    values = st.sampled_from([0.0, 1.0]) if binary else REWARDS
    if constant_groups:
        per = {g: draw(st.sampled_from([0.1, 0.7, 0.3, 1 / 3, 0.2])) for g in ids}
        rewards = [per[g] for g in gids]
    else:
        rewards = draw(st.lists(values, min_size=len(gids), max_size=len(gids)))
    return {"rewards": rewards, "group_ids": gids, "lengths": lengths, "seq": seq}


def make_state(b, dtype=F64, requires_grad=False):
    mask = torch.tensor([[t < n for t in range(b["seq"])] for n in b["lengths"]])
    return State.from_batch(logp=torch.zeros(mask.shape, dtype=dtype), mask=mask,
                            rewards=torch.tensor(b["rewards"], dtype=dtype, requires_grad=requires_grad),
                            group_ids=torch.tensor(b["group_ids"]))


def _state(rewards, lengths, group_ids=None, requires_grad=False):
    b = {"rewards": rewards, "lengths": lengths, "seq": max(lengths + [1]),
         "group_ids": group_ids if group_ids is not None else [0] * len(rewards)}
    return make_state(b, requires_grad=requires_grad)
