"""DeepSearch's tree-value advantages (rlobj/terms/advantages/tree.py): hand values on a searched
toy tree, a plain-loop reference on Hypothesis inputs, the gradient through the surrogate, bad
input."""

import math

import pytest
import torch
from batches import batches, leaf, make_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlobj import Objective, reinforce, token_mean
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import leaf_step_tokens, tree_value_advantage

SETTINGS = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def slow_reference(values, ends, mask, group_ids, temperature, q_max, eps, scale_by_std):
    """The reference's loops: per row, the leaf step is the last one; sibling stats of final scores."""
    batch, width = mask.shape
    scores = torch.zeros(batch, width, dtype=torch.float64)
    final = []
    for b in range(batch):
        valid = [t for t in range(width) if mask[b, t]]
        step, steps = 0, []
        for t in valid:
            steps.append(step)
            step += int(ends[b, t])
        for t, k in zip(valid, steps, strict=True):
            v = float(values[b, t])
            scores[b, t] = v if (k == steps[-1] or temperature == 0) else q_max * math.tanh(v / temperature)
        final.append(float(scores[b, valid[-1]]) if valid else 0.0)
    out = torch.zeros(batch, width, dtype=torch.float64)
    for b in range(batch):
        members = [final[j] for j in range(batch) if group_ids[j] == group_ids[b]]
        mean = 0.0 if len(members) == 1 else sum(members) / len(members)
        std = math.sqrt(sum((m - sum(members) / len(members)) ** 2 for m in members) / len(members))
        divide = scale_by_std and len(members) > 1 and std > 0
        for t in range(width):
            if mask[b, t]:
                out[b, t] = (scores[b, t] - mean) / (std + eps) if divide else scores[b, t] - mean
    return out


def state_of(values, ends, mask, group_ids):
    return State.from_batch(logp=torch.full(mask.shape, -0.5), mask=mask, group_ids=torch.tensor(group_ids),
                            extras={"node_values": values, "step_ends": ends})


def test_hand_values_on_the_searched_toy_tree():
    # tests/rollout/test_mcts.py's 2x2 tree: paths A->A2 (values -2/3, -1) and B->B2 (2/3, 1), one token
    # per step. Intermediate steps: tanh(+-2/3) = +-0.58278; finals -1, 1 -> mean 0, population std 1
    values = torch.tensor([[-2 / 3, -1.0], [2 / 3, 1.0]])
    ends = torch.ones(2, 2, dtype=torch.bool)
    mask = torch.ones(2, 2, dtype=torch.bool)
    out = tree_value_advantage(scale_by_std=True)(state_of(values, ends, mask, [0, 0])).advantages
    torch.testing.assert_close(out, torch.tensor([[-0.5827829, -1.0], [0.5827829, 1.0]]) / (1 + 1e-6))
    # the reference's run scripts: no std division (finals -1, 1 -> mean 0)
    values3 = torch.tensor([[-2 / 3, -1.0], [2 / 3, 1.0], [0.5, 1.0]])
    out = tree_value_advantage()(state_of(values3, torch.ones(3, 2, dtype=torch.bool),
                                          torch.ones(3, 2, dtype=torch.bool), [0, 0, 0])).advantages
    torch.testing.assert_close(out, torch.tensor([[math.tanh(-2 / 3) - 1 / 3, -1.0 - 1 / 3],
                                                  [math.tanh(2 / 3) - 1 / 3, 1.0 - 1 / 3],
                                                  [math.tanh(0.5) - 1 / 3, 1.0 - 1 / 3]]))
    # a group of one path: centred on 0 and not divided; temperature 0: no squash
    single = tree_value_advantage(temperature=0.0)(state_of(values[:1], ends[:1], mask[:1], [0])).advantages
    torch.testing.assert_close(single, values[:1])
    # all finals equal: not divided (the reference's 1/eps blow-up is avoided)
    same = tree_value_advantage(scale_by_std=True)(state_of(torch.tensor([[0.5, 1.0], [-0.5, 1.0]]), ends, mask, [0, 0])).advantages
    torch.testing.assert_close(same, torch.tensor([[math.tanh(0.5) - 1.0, 0.0], [-math.tanh(0.5) - 1.0, 0.0]]))


def test_leaf_step_tokens_by_hand():
    ends = torch.tensor([[True, False, True, False], [False, False, False, True]])
    mask = torch.tensor([[True, True, True, True], [True, True, True, True]])
    # row 0: steps [0], [1, 2], [3] (tokens after the last end form a step of their own)
    assert leaf_step_tokens(ends, mask).tolist() == [[False, False, False, True], [True, True, True, True]]


@given(batches(min_group=1), st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([1.0, 0.7]),
       st.sampled_from([1e-6, 0.0]), st.booleans())
def test_matches_the_slow_reference(batch, temperature, q_max, eps, scale_by_std):
    term = tree_value_advantage(temperature=temperature, q_max=q_max, eps=eps, scale_by_std=scale_by_std)
    out = Objective(term >> reinforce() >> token_mean())(**batch).state.advantages
    want = slow_reference(batch["extras"]["node_values"].double(), batch["extras"]["step_ends"], batch["mask"],
                          batch["group_ids"].tolist(), temperature, q_max, eps, scale_by_std)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)


def test_gradient_through_the_surrogate():
    # advantages are constants: with reinforce + token_mean, dL/dlogp = -A / N_tokens
    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=2))
    out = Objective(tree_value_advantage() >> reinforce() >> token_mean())(**batch)
    out.loss.backward()
    assert not out.state.advantages.requires_grad
    expected = torch.where(batch["mask"], -out.state.advantages / batch["mask"].sum(), 0.0)
    torch.testing.assert_close(batch["logp"].grad, expected)


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"tree_value_advantage.q_max: expected > 0.0"):
        tree_value_advantage(q_max=0.0)
    with pytest.raises(RlobjInputError, match=r"tree_value_advantage.temperature: expected >= 0.0"):
        tree_value_advantage(temperature=-1.0)
    mask = torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises(RlobjInputError, match="node_values"):
        tree_value_advantage()(State.from_batch(logp=torch.zeros(2, 2), mask=mask, group_ids=torch.tensor([0, 0]),
                                                extras={"step_ends": mask}))
    with pytest.raises(RlobjInputError, match="bool"):
        tree_value_advantage()(state_of(torch.zeros(2, 2), torch.ones(2, 2), mask, [0, 0]))
