"""turn_end_rewards (rlobj/terms/rewards/turns.py): hand values with the arithmetic in comments,
reward conservation on Hypothesis batches, bad input."""

import pytest
import torch
from batches import batches
from hypothesis import given, settings
from terms._turn_states import F64, HAND, state

from rlobj import batch_whiten, group_mean_baseline
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.rewards import turn_end_rewards

SETTINGS = settings(max_examples=40)


def test_turn_end_rewards_hand_values_and_conservation():
    s = state(**HAND, rewards=[3.0, 4.0])  # the scorer's reward: the episode's return
    out = turn_end_rewards()(s)
    assert out.token_rewards.tolist() == [[0, 1, 0, 0, 2], [0, 0, 4, 0, 0]]
    assert out.rewards.tolist() == [0.0, 0.0]
    # REINFORCE++ returns with gamma .5, discounted per token position (the observation position
    # t=2 holds no reward but counts in the exponent). Row 0 rewards [0, 1, 0, 0, 2]:
    # G4 = 2, G3 = .5 * 2 = 1, G2 = .5, G1 = 1 + .5 * .5 = 1.25, G0 = .5 * 1.25 = .625.
    # Row 1 [0, 0, 4]: G = [1, 2, 4]. Valid tokens: row 0 t = 0, 1, 3, 4, then row 1 t = 0, 1, 2.
    whitened = (turn_end_rewards() >> batch_whiten(0.5, eps=0.0))(s)
    raw = [0.625, 1.25, 1.0, 2.0, 1.0, 2.0, 4.0]
    values = torch.tensor(raw, dtype=F64)
    expected = (values - values.mean()) / values.var(unbiased=False).sqrt()
    torch.testing.assert_close(whitened.advantages[s.mask], expected)
    # group baselines see the same sequence reward before and after the move
    torch.testing.assert_close(group_mean_baseline()(out).advantages, group_mean_baseline()(s).advantages)


@SETTINGS
@given(fields=batches())
def test_turn_end_rewards_conserves_sequence_reward(fields):
    s = State.from_batch(**fields)
    out = turn_end_rewards()(s)
    before = s.rewards
    after = out.rewards + (out.token_rewards * s.mask).sum(-1)
    torch.testing.assert_close(after, before.to(after.dtype), atol=1e-5, rtol=1e-5)


def test_bad_input_names_the_field():
    s = state(**HAND)
    missing = s.update(extras={"turn_ids": s.extras["turn_ids"]})
    with pytest.raises(RlobjInputError, match="turn_rewards"):
        turn_end_rewards()(missing)
