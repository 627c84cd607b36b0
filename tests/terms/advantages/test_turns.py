"""Turn terms (rlobj/terms/advantages/turns.py, rlobj/terms/rewards/turns.py): hand values with the
arithmetic in comments, a plain-loop reference on Hypothesis batches, gradients, reward
conservation, bad input."""



import pytest
import torch
from batches import batches, leaf, make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj import Objective, batch_whiten, group_mean_baseline, reinforce, token_mean
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import turn_returns
from rlobj.terms.rewards import turn_end_rewards

F64 = torch.float64
SETTINGS = settings(max_examples=40)


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


@SETTINGS
@given(fields=batches())
def test_turn_end_rewards_conserves_sequence_reward(fields):
    s = State.from_batch(**fields)
    out = turn_end_rewards()(s)
    before = s.rewards
    after = out.rewards + (out.token_rewards * s.mask).sum(-1)
    torch.testing.assert_close(after, before.to(after.dtype), atol=1e-5, rtol=1e-5)


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
    missing = s.update(extras={"turn_ids": s.extras["turn_ids"]})
    with pytest.raises(RlobjInputError, match="turn_rewards"):
        turn_end_rewards()(missing)
