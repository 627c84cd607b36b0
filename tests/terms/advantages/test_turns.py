"""turn_returns (rlobj/terms/advantages/turns.py): hand values with the arithmetic in comments, a
plain-loop reference on Hypothesis batches, gradients, bad input."""

import pytest
import torch
from batches import batches, leaf, make_batch
from hypothesis import given, settings
from hypothesis import strategies as st
from terms._turn_states import F64, HAND, state

from rlobj import Objective, reinforce, token_mean
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import turn_returns

SETTINGS = settings(max_examples=40)


def test_turn_returns_hand_values():
    s = state(**HAND)
    # gamma .5: G(row 0) = [1 + .5 * 2, 2] = [2, 2]; G(row 1) = [4]
    assert turn_returns(0.5, baseline="none")(s).advantages.tolist() == [[2, 2, 0, 2, 2], [4, 4, 4, 0, 0]]
    # baseline: turn 0 mean over both rows (2 + 4) / 2 = 3 -> -1 and +1; turn 1 only row 0 -> 2 - 2 = 0
    assert turn_returns(0.5)(s).advantages.tolist() == [[-1, -1, 0, 0, 0], [1, 1, 1, 0, 0]]
    # gamma 1: row 0 G = [3, 2]; turn 0 baseline (3 + 4) / 2 = 3.5
    assert turn_returns(1.0)(s).advantages.tolist() == [[-0.5, -0.5, 0, 0, 0], [0.5, 0.5, 0.5, 0, 0]]
    # gamma 0: each turn's own reward
    assert turn_returns(0.0, baseline="none")(s).advantages.tolist() == [[1, 1, 0, 2, 2], [4, 4, 4, 0, 0]]


def reference_turn_returns(fields, gamma, baseline):
    """Plain loops over rows, turns and tokens."""
    mask, groups = fields["mask"], fields["group_ids"].tolist()
    turn_ids, rewards = fields["extras"]["turn_ids"], fields["extras"]["turn_rewards"]
    rows, width = mask.shape
    table = []
    for i in range(rows):
        r = {}
        for t in range(width):
            k = int(turn_ids[i, t])
            if mask[i, t] and k >= 0:
                r[k] = r.get(k, 0.0) + float(rewards[i, t])
        G = {}
        for k in r:
            G[k] = sum(gamma ** (k2 - k) * r[k2] for k2 in r if k2 >= k)
        table.append(G)
    out = torch.zeros(rows, width, dtype=F64)
    for i in range(rows):
        for t in range(width):
            k = int(turn_ids[i, t])
            if not (mask[i, t] and k >= 0):
                continue
            b = 0.0
            if baseline == "group":
                peers = [table[j][k] for j in range(rows) if groups[j] == groups[i] and k in table[j]]
                b = sum(peers) / len(peers)
            out[i, t] = table[i][k] - b
    return out


@SETTINGS
@given(fields=batches(), gamma=st.sampled_from([0.0, 0.3, 0.9, 1.0]), baseline=st.sampled_from(["group", "none"]))
def test_turn_returns_matches_reference(fields, gamma, baseline):
    fields = {**fields, "extras": {**fields["extras"], "turn_rewards": fields["extras"]["turn_rewards"].double()}}
    got = turn_returns(gamma, baseline)(State.from_batch(**fields)).advantages.double()
    torch.testing.assert_close(got, reference_turn_returns(fields, gamma, baseline), atol=1e-5, rtol=1e-5)


def test_gradient_is_minus_advantage_over_token_count():
    fields = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=8))
    out = Objective(turn_returns(0.9) >> reinforce() >> token_mean())(**fields)
    out.loss.backward()
    advantages = out.state.advantages
    mask = fields["mask"]
    expected = torch.where(mask, -advantages / mask.sum(), torch.zeros(()))
    torch.testing.assert_close(fields["logp"].grad, expected.to(fields["logp"].grad.dtype))
    assert bool((fields["logp"].grad[mask] != 0).any())
    # outputs carry no gradient
    assert not out.state.advantages.requires_grad


def test_bad_input_names_the_field():
    with pytest.raises(RlobjInputError, match="gamma"):
        turn_returns(gamma=1.5)
    with pytest.raises(RlobjInputError, match="baseline"):
        turn_returns(baseline="batch")
    s = state(**HAND)
    bad = s.update(extras={**s.extras, "turn_ids": s.extras["turn_ids"].double()})
    with pytest.raises(RlobjInputError, match="turn_ids"):
        turn_returns()(bad)
