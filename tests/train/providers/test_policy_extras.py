"""Providers of rlobj/train/providers/policy_extras.py (RLPRAnswerLogprobs, UnconditionedLogprobs,
SelfRewardProbe, HintedContext, GuidedSampler): values against plain loops on the tiny model, and one RL
update per consuming term whose effect on the weights is checked against the same update without it."""


import pytest
import torch
from train._helpers import synthetic_rewards, tiny_module
from train.providers._policy_helpers import (
    GRPO,
    _away_from_grpo,
    _batch,
    _differ,
    _inputs,
    _loop_logp,
    _ready,
    _update,
    _valid,
)

from rlobj import (
    clip_ratio,
    group_zscore,
    hint_clip_ratio,
    rlpr_reward,
    self_aligned_reward,
    self_reward_advantage,
    self_reward_mse,
    token_mean,
)
from rlobj.train.providers import (
    GuidedSampler,
    HintedContext,
    RLPRAnswerLogprobs,
    SelfRewardProbe,
    UnconditionedLogprobs,
)
from rlobj.train.stages import Score


# --------------------------------------------------------------------------- RLPR
def test_rlpr_answer_logprobs_match_a_loop():
    module = tiny_module()
    batch = _batch(module)
    ctx = module.context(0)
    provider = _ready(RLPRAnswerLogprobs(open_tag="="), [rlpr_reward(aggregate="geo_mean")])
    assert provider.aggregate == "geo_mean"
    assert provider.reasoning("12=3") == "12=" and provider.reasoning("123") == "123="
    out = provider.batch(ctx, batch, _inputs(module, batch))
    texts = ctx.decode(batch.rollout)
    assert any("=" in t for t in texts) and any("=" not in t for t in texts)  # both branches are exercised
    logp, mask, prior = out["extras:answer_logp"], out["extras:answer_mask"], out["extras:answer_prior"]
    assert logp.shape == mask.shape == (16, 2) and mask.dtype == torch.bool and prior.shape == (16,)
    for b in range(16):
        prompt, _ = _valid(batch.rollout, b)
        answer = ctx.encode(batch.records[b]["answer"])
        expected = _loop_logp(module.policy, prompt + ctx.encode(provider.reasoning(texts[b])), answer)
        assert mask[b].tolist() == [True] * len(answer)
        assert logp[b, :len(answer)].tolist() == pytest.approx(expected, abs=1e-5)
        prior_logp = torch.tensor(_loop_logp(module.policy, prompt + ctx.encode("="), answer))  # reference = policy now
        assert float(prior[b]) == pytest.approx(float(prior_logp.mean().exp()), abs=1e-5)
    # the prior is cached per (prompt, answer) and survives a state round trip
    again = _ready(RLPRAnswerLogprobs(open_tag="="), [rlpr_reward(aggregate="geo_mean")])
    again.load_state_dict(provider.state_dict())
    assert len(again._prior) == 16  # synthetic rows have their own prompts
    assert torch.equal(again.prior(ctx, [[9, 9]], [[4]]), provider.prior(ctx, [[9, 9]], [[4]]))


def test_rlpr_reward_trains_through_the_module():
    term = rlpr_reward(format_weight=0.1)
    with_term, metrics = _update(term >> GRPO, lambda m, s: _batch(m))
    assert 0.0 <= metrics["rlpr/probability_reward"] <= 1.0
    assert _away_from_grpo(with_term) > 1e-6


def test_rlpr_prior_is_the_initial_policy_and_empty_answers_have_no_tokens():
    module = tiny_module()
    batch = _batch(module, records=[{"prompt": "1", "answer": ""}, {"prompt": "2", "answer": "7"},
                                    {"prompt": "3", "answer": "77"}, {"prompt": "4", "answer": "1"}])
    ctx = module.context(0)
    provider = _ready(RLPRAnswerLogprobs(), [rlpr_reward()])
    first = provider.batch(ctx, batch, {})
    assert not first["extras:answer_mask"][batch.rollout.group_ids == 0].any()
    assert first["extras:answer_prior"][batch.rollout.group_ids == 0].eq(0).all()
    with torch.no_grad():  # move the policy: the prior stays the initial policy's
        for p in module.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fresh = _ready(RLPRAnswerLogprobs(), [rlpr_reward()])
    second = fresh.batch(ctx, batch, {})
    assert torch.allclose(second["extras:answer_prior"], first["extras:answer_prior"])
    assert not torch.allclose(second["extras:answer_logp"], first["extras:answer_logp"])
    plain = _ready(RLPRAnswerLogprobs(), [rlpr_reward(debias=False)]).batch(ctx, batch, {})
    assert "extras:answer_prior" not in plain and "extras:answer_logp" in plain  # nothing reads the prior


# --------------------------------------------------------------------------- Self-Aligned Reward
@pytest.mark.parametrize("context", ["", "1+"])
def test_unconditioned_logprobs_match_a_loop(context):
    module = tiny_module(update=dict(micro_batch_size=3))
    batch = _batch(module)
    ctx = module.context(0)
    out = _ready(UnconditionedLogprobs(context=context)).batch(ctx, batch, {})["extras:logp_unconditioned"]
    start = ctx.encode(context) or [ctx.pad_token_id]
    assert out.shape == batch.rollout.response_ids.shape
    for b in range(16):
        _, response = _valid(batch.rollout, b)
        assert out[b, :len(response)].tolist() == pytest.approx(_loop_logp(module.policy, start, response), abs=1e-5)
        assert out[b, len(response):].eq(0).all()


def test_self_aligned_reward_trains_through_the_module():
    with_term, metrics = _update(self_aligned_reward(alpha=0.5) >> GRPO, lambda m, s: _batch(m))
    assert -1.0 <= metrics["sar/score"] < 1.0 and metrics["sar/score"] != 0.0
    assert _away_from_grpo(with_term) > 1e-6


# --------------------------------------------------------------------------- LaSeR
def test_self_reward_probe_values_and_gradient():
    module = tiny_module(update=dict(micro_batch_size=5))
    batch = _batch(module)
    ctx = module.context(0)
    provider = _ready(SelfRewardProbe(token="7"), [self_reward_advantage(), self_reward_mse()])
    token = ctx.encode("7")[0]
    value = provider.batch(ctx, batch, {})["extras:self_reward_logp"]
    assert value.shape == (16,) and not value.requires_grad
    for b in range(16):
        prompt, response = _valid(batch.rollout, b)
        assert float(value[b]) == pytest.approx(_loop_logp(module.policy, prompt + response, [token])[0], abs=1e-5)
    rows = torch.tensor([3, 0, 9])
    micro = provider.micro(ctx, batch, rows, {})["extras:self_reward_logp"]
    assert micro.requires_grad and torch.allclose(micro.detach(), value[rows], atol=1e-5)
    micro.sum().backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in module.policy.parameters())
    # only the stage that reads it: an mse-only chain computes nothing per batch, an advantage-only chain nothing per micro-batch
    assert _ready(SelfRewardProbe(), [self_reward_mse()]).batch(ctx, batch, {}) == {}
    assert _ready(SelfRewardProbe(), [self_reward_advantage()]).micro(ctx, batch, rows, {}) == {}


def test_self_reward_mse_moves_the_weights():
    def run(coef):
        return _update(GRPO >> self_reward_mse(coef=coef), lambda m, s: _batch(m))

    with_term, metrics = run(0.1)
    assert "self_reward/score" in metrics and "self_reward/accuracy" in metrics
    without, _ = run(0.0)
    assert _differ(with_term, without) > 1e-6


def test_self_reward_mse_moves_the_weights_next_to_self_reward_advantage():
    # the batch stage reads the detached probe, the loss the micro-batch one with gradient (it replaces it)
    def run(coef):
        chain = self_reward_advantage(tau=0.1) >> clip_ratio() >> token_mean() >> self_reward_mse(coef=coef)
        return _update(chain, lambda m, s: _batch(m))

    assert _differ(run(0.1)[0], run(0.0)[0]) > 1e-6


# --------------------------------------------------------------------------- Guide
HINTED = [{"prompt": "1+2=", "answer": "3", "hint": "3"}, {"prompt": "4+4=", "answer": "8"},
          {"prompt": "5+1=", "answer": "6", "hint": "6 "}, {"prompt": "2+7=", "answer": "9"}]


def test_hinted_context_matches_a_loop_and_defaults_to_no_guided_rows():
    module = tiny_module(update=dict(micro_batch_size=3))
    records = [dict(r, guided=bool(r.get("hint"))) for r in HINTED]
    batch = _batch(module, records=records)
    ctx = module.context(0)
    inputs = _inputs(module, batch)
    out = _ready(HintedContext()).batch(ctx, batch, inputs)
    guided, hinted = out["extras:guided"], out["extras:logp_old_hint"]
    assert torch.equal(guided, torch.isin(batch.rollout.group_ids, torch.tensor([0, 2])))
    for b in range(16):
        _, response = _valid(batch.rollout, b)
        if guided[b]:
            record = batch.records[b]
            expected = _loop_logp(module.policy, ctx.encode(record["prompt"] + record["hint"]), response)
            assert hinted[b, :len(response)].tolist() == pytest.approx(expected, abs=1e-5)
        else:
            assert torch.equal(hinted[b], inputs["logp_old"][b])
    plain = _batch(module, records=HINTED)  # a hint alone does not make a row guided
    assert not _ready(HintedContext()).batch(ctx, plain, _inputs(module, plain))["extras:guided"].any()
    plain.extras["guided"] = torch.arange(16) == 0  # the sampler's marks win
    assert _ready(HintedContext()).batch(ctx, plain, _inputs(module, plain))["extras:guided"].tolist() == [True] + [False] * 15


def test_guided_sampler_rows_and_their_hinted_logprobs():
    module = tiny_module()
    ctx = module.context(0)
    batch = GuidedSampler(fraction=0.5).sample(ctx, HINTED, 4)
    assert len(batch) == 16 and not batch.on_policy
    guided = batch.extras["guided"]
    assert guided.sum() == 4 and batch.rollout.group_ids.bincount().tolist() == [4, 4, 4, 4]
    for b in range(16):
        record = batch.records[b]
        assert record is HINTED[int(batch.rollout.group_ids[b])]
        assert _valid(batch.rollout, b)[0] == ctx.encode(record["prompt"])  # trained without the hint
        assert bool(guided[b]) == (bool(record.get("hint")) and b % 4 >= 2)
    out = _ready(HintedContext()).batch(ctx, batch, _inputs(module, batch))
    rows = guided[:, None] & batch.rollout.response_mask
    # the sampler's own log-probs were drawn in the hinted context: the provider recomputes them
    assert torch.allclose(out["extras:logp_old_hint"][rows], batch.rollout.logp_rollout[rows], atol=1e-4)


def test_hint_clip_ratio_trains_through_the_module():
    def make(module, step):
        ctx = module.context(step)
        batch = GuidedSampler(fraction=0.5).sample(ctx, HINTED, 4)
        batch.scores = [Score(float(r)) for r in synthetic_rewards(len(batch))]
        return batch

    with_hint, metrics = _update(group_zscore() >> hint_clip_ratio() >> token_mean(), make)
    assert metrics["guide/guided_frac"] == 0.25 and metrics["guide/sampled_fraction"] == 0.25
    without, _ = _update(GRPO, make)
    assert _differ(with_hint, without) > 1e-6
