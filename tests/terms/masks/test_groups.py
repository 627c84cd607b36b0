"""The zero-variance group mask (rlobj/terms/masks/groups.py): hand values, float32 groups of equal
rewards, a loop reference on Hypothesis batches, bad input."""

import pytest
import torch
from batches import assert_refused_without
from hypothesis import given
from hypothesis import strategies as st
from terms._reward_batches import _state, batches, make_state

from rlobj.terms.masks import drop_zero_variance_groups, zero_variance_groups


# ----------------------------------------------------------------------------- zero-variance groups
def test_hand_zero_variance_groups():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5])
    gids = torch.tensor([0, 0, 1, 1, 2])
    assert zero_variance_groups(rewards, gids).tolist() == [True, True, False, False, True]
    state = _state([1.0, 1.0, 0.0, 1.0, 0.5], [2, 1, 3, 2, 1], group_ids=[0, 0, 1, 1, 2])
    out = drop_zero_variance_groups()(state)
    assert out.mask.tolist() == [[False] * 3, [False] * 3, [True] * 3, [True, True, False], [False] * 3]
    assert float(out.metrics["groups/zero_variance_frac"]) == pytest.approx(3 / 5)
    assert out.rewards is state.rewards  # rewards untouched


def test_all_equal_float32_groups_are_detected():
    # Regression: seven rewards of 0.7 in float32 had a naive group std of 6e-8 != 0.
    rewards = torch.full((7,), 0.7)
    assert bool(zero_variance_groups(rewards, torch.zeros(7, dtype=torch.long)).all())


@given(b=batches(), constant=st.booleans())
def test_zero_variance_groups_match_loop(b, constant):
    if constant:
        per = {g: 0.7 for g in b["group_ids"]}
        b = {**b, "rewards": [per[g] for g in b["group_ids"]]}
    state = make_state(b, dtype=torch.float32)
    flat = zero_variance_groups(state.rewards, state.group_ids).tolist()
    for i, g in enumerate(b["group_ids"]):
        vals = [float(state.rewards[j]) for j, x in enumerate(b["group_ids"]) if x == g]
        assert flat[i] == (max(vals) == min(vals))
    mask = drop_zero_variance_groups()(state).mask
    for i, row in enumerate(mask.tolist()):
        assert row == ([False] * b["seq"] if flat[i] else [t < b["lengths"][i] for t in range(b["seq"])])


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("term", [drop_zero_variance_groups()], ids=lambda t: type(t).__name__)
def test_missing_rewards(term):
    assert_refused_without(term, "reads 'rewards'", width=2, group_ids=torch.tensor([0, 0]))


@pytest.mark.parametrize("term", [drop_zero_variance_groups()], ids=lambda t: type(t).__name__)
def test_missing_group_ids(term):
    assert_refused_without(term, "group_ids", width=2, rewards=torch.tensor([1.0, 0.0]))
