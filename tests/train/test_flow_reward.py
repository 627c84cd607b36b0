"""RLFR's flow reward against the authors' code (github.com/Jinghaoleven/RLFR @ 1589879): debiased
deviation at t = 0.8, hooked layers at depth 0.25/0.5/0.75, min-max + threshold + top-k token rewards
next to the verifier's outcome reward. Hand values and a tiny policy."""

import math

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.paper_rewards import FlowReward, VelocityField, velocity_deviation


def _zero_field() -> VelocityField:
    field = VelocityField(dim=1, hidden=0)
    with torch.no_grad():
        for p in field.parameters():
            p.zero_()
    return field


def test_velocity_deviation_is_weighted_by_the_authors_debias_factor():
    z, noise = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])
    # v = 0, target z - noise = (1, 2): squared errors (1, 4); weight t / (1 - t) = 4 at t = 0.8
    assert velocity_deviation(_zero_field(), z, noise, (0.8,)).tolist() == pytest.approx([4.0, 16.0])
    # two timesteps: the mean of the weighted errors, (1 * 1 + 4 * 1) / 2 for row 0
    assert velocity_deviation(_zero_field(), z, noise, (0.5, 0.8)).tolist() == pytest.approx([2.5, 10.0])


def test_velocity_deviation_by_hand_with_a_linear_field():
    field = VelocityField(dim=1, hidden=0)  # v(x, t, layer) = 2x + t + 0 * layer
    with torch.no_grad():
        field.net.weight.copy_(torch.tensor([[2.0, 1.0, 0.0]]))
        field.net.bias.zero_()
    z, noise = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    # t = 0.5: x = 0.5, v = 1.5, target 1 -> 0.25 (weight 1); t = 0.8: x = 0.8, v = 2.4, target 1 -> 1.96 (weight 4)
    assert velocity_deviation(field, z, noise, (0.5, 0.8)).tolist() == pytest.approx([(0.25 + 4 * 1.96) / 2])
    with pytest.raises(RlobjInputError, match=r"timesteps in \(0, 1\)"):
        velocity_deviation(field, z, noise, (1.0,))


def test_token_rewards_min_max_threshold_top_k_by_hand():
    from rlobj.train.flow_reward import flow_token_rewards

    scores = torch.tensor([2.0, 6.0, 4.0, 10.0, 9.0], dtype=torch.float64)
    # min-max: (0, 0.5, 0.25, 1, 0.875); > 0.6 keeps 1 and 0.875; top 1 keeps 1
    assert flow_token_rewards(scores, 0.01, 0.6, 15).tolist() == pytest.approx([0, 0, 0, -0.01, -0.00875])
    assert flow_token_rewards(scores, 0.01, 0.6, 1).tolist() == pytest.approx([0, 0, 0, -0.01, 0])
    assert flow_token_rewards(scores, 1.0, None, None, normalize=False).tolist() == pytest.approx([-2, -6, -4, -10, -9])
    assert flow_token_rewards(torch.ones(3), 0.01).tolist() == [0.0, 0.0, 0.0]  # no spread: no reward


def test_hooked_layers_follow_the_authors_rule():
    from rlobj.train.flow_reward import flow_layers

    assert flow_layers((0.25, 0.5, 0.75), 28) == [7, 14, 21]
    assert flow_layers((0.25, 0.5, 0.75), 4) == [1, 2, 3]
    assert flow_layers((1.0,), 4) == [3]  # round(p L) = L is the last layer


def test_defaults_are_the_authors():
    flow = FlowReward()
    assert flow.layers == (0.25, 0.5, 0.75) and flow.times == (0.8,) and flow.context
    assert (flow.coef, flow.threshold, flow.top_k, flow.normalize) == (0.01, 0.6, 15, True)
    with pytest.raises(RlobjInputError, match="FlowReward.times"):
        FlowReward(times=(0.25, 1.0))
    with pytest.raises(RlobjInputError, match="FlowReward.top_k"):
        FlowReward(top_k=0)


def test_flow_reward_on_a_tiny_policy_scores_hooked_layers_next_to_the_outcome():
    from rlobj.data.tasks import ExactAnswer
    from rlobj.train.flow_reward import flow_token_rewards
    from rlobj.train.providers.scores import row_generator
    from tests.train._helpers import TINY, tiny_module

    module = tiny_module(policy={"tiny_model": {**TINY, "layers": 4}}, rollout={"max_new_tokens": 4})
    ctx = module.context(0)
    records = [{"prompt": "1+1=", "answer": "2", "completion": "2"}, {"prompt": "2+3=", "answer": "5", "completion": "5"}]
    batch = ctx.sample(records)
    flow = FlowReward(fit_steps=10, hidden=8, top_k=2, threshold=0.0, verifier=ExactAnswer())
    scores = flow(ctx, batch)
    texts = ctx.decode(batch.rollout)
    assert [s.reward for s in scores] == [ExactAnswer()(t, r) for t, r in zip(texts, batch.records)]
    # latents: decoder layers 1, 2, 3 of 4 (hidden_states[h + 1]), conditioned on the previous token
    prompt = batch.rollout.prompt_ids[0][batch.rollout.prompt_mask[0].bool()].tolist()
    response = batch.rollout.response_ids[0][batch.rollout.response_mask[0].bool()].tolist()
    z, cond, layer = flow.latents(ctx, [prompt], [response])[0]
    with torch.no_grad():
        states = module.policy(input_ids=torch.tensor([prompt + response]), output_hidden_states=True).hidden_states
    for i, h in enumerate((1, 2, 3)):
        assert torch.allclose(z[i], states[h + 1][0, len(prompt):], atol=1e-5)
        assert torch.allclose(cond[i], states[h + 1][0, len(prompt) - 1:-1], atol=1e-5)
    assert layer.tolist() == pytest.approx([0.25, 0.5, 0.75])
    raw = flow.token_scores(z, cond, layer, row_generator(flow.seed, ctx.seed, ctx.step, 0))
    assert scores[0].token_rewards == pytest.approx(flow_token_rewards(raw, 0.01, 0.0, 2).tolist())
    assert sum(1 for v in scores[0].token_rewards if v != 0) <= 2 and max(scores[0].token_rewards) <= 0.0


def test_flow_reward_with_a_verifier_trains_from_yaml(tmp_path):
    from tests.train._yaml_fit import fit_yaml

    scorer = {"class_path": "rlobj.train.paper_rewards.FlowReward",
              "init_args": {"fit_steps": 20, "hidden": 16, "top_k": 2, "coef": 0.5,
                            "verifier": {"class_path": "rlobj.data.tasks.ExactAnswer"}}}
    metrics = fit_yaml(tmp_path, scorer)
    assert metrics["phase"] == 1.0 and math.isfinite(metrics["loss"])
    assert metrics["flow/reward_mean"] < 0.0 and 0.0 < metrics["flow/tokens_rewarded"] <= 2.0


def test_flow_reward_state_round_trip_gives_the_same_rewards():
    from rlobj.train.paper_rewards import FlowReward
    from tests.train._helpers import tiny_module

    module = tiny_module(scorer=FlowReward(fit_steps=10, hidden=8), rollout={"max_new_tokens": 3})
    ctx = module.context(0)
    batch = ctx.sample([{"prompt": "1+1=", "answer": "2", "completion": "2"}] * 2)
    first = module.scorer(ctx, batch)
    restored = FlowReward(fit_steps=10, hidden=8)
    restored.load_state_dict(module.scorer.state_dict())
    again = restored(ctx, batch)  # no refit: the saved field scores the batch
    assert [s.token_rewards for s in again] == [s.token_rewards for s in first]
    assert all(len(s.token_rewards) == n for s, n in zip(first, batch.rollout.response_mask.sum(-1).tolist()))
