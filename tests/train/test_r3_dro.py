"""DRO / R3 beyond the weights: the propagation factor by hand, the reference tokens' ranks against a
direct forward, and 2 RL steps from YAML with the section 4.2.2 filter (whose own tests are in
tests/train/transforms/test_r3.py)."""

import math

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.paper_rewards import R3Reward, r3_propagation, r3_reflective_tokens, r3_rewards

LN2 = math.log(2.0)  # gamma = ln 2: the decay 1 - e^{-gamma d} is 1/2, 3/4, 7/8 at d = 1, 2, 3


def _factor(logp_k: float, d: int, gamma: float = LN2) -> float:
    p = math.exp(logp_k)
    return p + (1 - p) * (1 - math.exp(-gamma * d))


def test_propagation_factor_by_hand():
    values = torch.tensor([[-2.0, -0.1, -1.0, -0.2], [-0.5, -0.1, -3.0, -0.2]], dtype=torch.float64)
    valid = torch.ones(4, dtype=torch.bool)
    # sigma = (0.75, 0, 1.0, 0): the two reflective tokens are positions 2 then 0
    assert r3_reflective_tokens(values, valid, 1) == [2]
    assert r3_reflective_tokens(values, valid, 2) == [0, 2]
    assert r3_reflective_tokens(values, valid, 9) == [0, 2]  # tokens that do not vary never count
    out = r3_propagation(values, valid, LN2, count=2)
    for i in range(2):
        l0, l2 = float(values[i, 0]), float(values[i, 2])
        expected = [l0,
                    -0.1 + math.log(_factor(l0, 1)),
                    l2 + math.log(_factor(l0, 2)),
                    -0.2 + math.log(_factor(l0, 3)) + math.log(_factor(l2, 1))]
        assert out[i].tolist() == pytest.approx(expected, abs=1e-12)
    # a reasoning sure of the reflective token (p = 1) lends nothing back: no correction
    sure = torch.tensor([[0.0, -0.3], [-1.0, -0.3]], dtype=torch.float64)
    assert r3_propagation(sure, torch.ones(2, dtype=torch.bool), 1.0, 1)[0].tolist() == pytest.approx([0.0, -0.3])


def test_r3_rewards_with_propagation_by_hand():
    values = torch.tensor([[-2.0, -0.1, -1.0, -0.2], [-0.5, -0.1, -3.0, -0.2]], dtype=torch.float64)
    mask = torch.ones(2, 4, dtype=torch.bool)
    rewards = r3_rewards(values, mask, torch.tensor([0, 0]), propagation_gamma=LN2, reflective_tokens=2)
    # weights from the uncorrected log-probs: sigma / sum sigma = (0.75, 0, 1, 0) / 1.75
    for i in range(2):
        l0, l2 = float(values[i, 0]), float(values[i, 2])
        expected = (0.75 * l0 + 1.0 * (l2 + math.log(_factor(l0, 2)))) / 1.75
        assert float(rewards[i]) == pytest.approx(expected, abs=1e-12)
    assert torch.equal(r3_rewards(values, mask, torch.tensor([0, 0])),
                       r3_rewards(values, mask, torch.tensor([0, 0]), reflective_tokens=2))  # off by default
    with pytest.raises(RlobjInputError, match="propagation_gamma: expected a number > 0"):
        r3_rewards(values, mask, torch.tensor([0, 0]), propagation_gamma=0.0)
    with pytest.raises(RlobjInputError, match="reflective_tokens: expected an int >= 1"):
        R3Reward(propagation_gamma=1.0, reflective_tokens=0)


def test_r3_reward_reports_the_reference_log_probs_and_ranks_of_a_direct_forward():
    from tests.train._helpers import tiny_module

    module = tiny_module(rollout={"max_new_tokens": 4, "group_size": 2})
    ctx = module.context(0)
    records = [{"prompt": "1+1=", "completion": "2 is it"}, {"prompt": "3+4=", "completion": "7"}]
    batch = ctx.sample(records)
    scores = R3Reward(answer_prefix="=", propagation_gamma=0.5)(ctx, batch)
    policy = module.policy.eval()
    eos = tuple(ctx.engine.eos_token_ids)
    for b, score in enumerate(scores):
        rollout = batch.rollout
        prompt = rollout.prompt_ids[b][rollout.prompt_mask[b].bool()].tolist()
        response = rollout.response_ids[b][rollout.response_mask[b].bool()].tolist()
        if response and response[-1] in eos:
            response = response[:-1]
        reference = module.encode(batch.records[b]["completion"])
        context = prompt + response + module.encode("=")
        with torch.no_grad():
            logits = policy(input_ids=torch.tensor([context + reference])).logits[0].double()
        at = logits[len(context) - 1:len(context) - 1 + len(reference)]
        target = at[torch.arange(len(reference)), torch.tensor(reference)]
        logp = (target - torch.logsumexp(at, -1)).tolist()
        ranks = (1 + (at > target[:, None]).sum(-1)).tolist()
        assert score.fields["r3_ref_logp"] == pytest.approx(logp, abs=1e-4)
        assert score.fields["r3_ref_ranks"] == ranks and min(ranks) >= 1


def test_r3_with_propagation_and_the_filter_trains_from_yaml(tmp_path):
    from tests.train._yaml_fit import fit_yaml

    scorer = {"class_path": "rlobj.train.paper_rewards.R3Reward",
              "init_args": {"answer_prefix": "=", "propagation_gamma": 0.5, "reflective_tokens": 2}}
    transforms = [{"class_path": "rlobj.train.transforms.r3.R3Filter",
                   "init_args": {"top_k": 1000, "rho": 0.5, "drop_fraction": 0.5}}]
    metrics = fit_yaml(tmp_path, scorer, transforms=transforms)
    assert math.isfinite(metrics["r3/mean"]) and math.isfinite(metrics["loss"])
    assert metrics["r3_filter/kept"] == 1.0 and metrics["r3_filter/dropped_low_variation"] == 1.0
