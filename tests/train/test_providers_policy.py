"""Providers of policy-computed extras (rlobj.train.providers.policy_extras / policy_extras_rows):
values against plain loops on the tiny model, and one RL update per consuming term whose effect
on the weights is checked against the same update without the term."""

import functools
import math
import warnings

import pytest
import torch

from rlobj import (
    clip_ratio,
    dependency_advantage_shaping,
    dph_divergence,
    group_zscore,
    hint_clip_ratio,
    mis_exploration_pg,
    pivotal_token_mask,
    rlpr_reward,
    self_aligned_reward,
    self_reward_advantage,
    self_reward_mse,
    token_mean,
    vogue_bonus,
)
from rlobj.rollout.perception import annealed_branch_probability, noisy_branch_rows
from rlobj.terms.rewards import visual_dependency
from rlobj.train.providers import (
    PROVIDERS,
    GuidedSampler,
    HintedContext,
    InitialPolicyRows,
    InitialPolicySamples,
    NoisyBranchRows,
    OffPolicyRows,
    PerturbedContext,
    RLPRAnswerLogprobs,
    SelfRewardProbe,
    UnconditionedLogprobs,
    VisualDependency,
    build_providers,
)
from rlobj.train.providers.policy_extras_rows import _seed, solved_groups
from rlobj.train.stages import Batch, Score

from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module

GRPO = group_zscore() >> clip_ratio() >> token_mean()


# --------------------------------------------------------------------------- helpers
def _batch(module, groups=4, group_size=4, seed=0, records=None, rewards=None) -> Batch:
    rollout = synthetic_rollout(module, groups=groups, group_size=group_size, seed=seed)
    records = records or [{"prompt": f"{g}+{g}=", "answer": str(2 * g + 11)} for g in range(groups)]
    rewards = synthetic_rewards(len(rollout), seed=seed) if rewards is None else rewards
    return Batch(rollout=rollout, records=[records[g] for g in rollout.group_ids.tolist()],
                 scores=[Score(float(r)) for r in rewards])


def _ready(provider, terms=()):
    provider.needed = frozenset(provider.provides)
    provider.setup(tuple(terms))
    return provider


def _inputs(module, batch):
    logp_old, _ = module.models.no_grad_logprobs(batch.rollout)
    rewards = batch.rewards if batch.scores is not None else None
    return dict(logp_old=logp_old, mask=batch.rollout.response_mask, rewards=rewards,
                group_ids=batch.rollout.group_ids, extras=dict(batch.extras))


def _loop_logp(model, context: list[int], target: list[int]) -> list[float]:
    """log pi(target_t | context, target_<t) from one plain forward of the joined ids."""
    ids = torch.tensor([context + target])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return [float(logp[len(context) - 1 + t, token]) for t, token in enumerate(target)]


def _valid(rollout, row):
    prompt = rollout.prompt_ids[row][rollout.prompt_mask[row]].tolist()
    response = rollout.response_ids[row][rollout.response_mask[row]].tolist()
    return prompt, response


def _update(objective, make_batch, steps=1, **overrides):
    """Weights and metrics after ``steps`` RL updates (one batch each) of a fresh tiny module."""
    module = tiny_module(objective=objective, update=dict(micro_batch_size=4), **overrides)
    before = [p.detach().clone() for p in module.policy.parameters()]
    metrics = {}
    for step in range(steps):
        ctx = module.context(step)
        batch = make_batch(module, step)
        for transform in module.transforms:
            batch = transform(ctx, batch)
        metrics = module.update_on_batch(batch, ctx)
    after = [p.detach().clone() for p in module.policy.parameters()]
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    return after, metrics


def _differ(first, second) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(first, second))


@functools.cache
def _grpo_weights():
    """Weights after one plain GRPO update on the shared batch: computed once, compared against."""
    return _update(GRPO, lambda m, s: _batch(m))[0]


def _away_from_grpo(weights) -> float:
    """How far ``weights`` are from the plain GRPO update's (largest absolute difference)."""
    return _differ(weights, _grpo_weights())


def test_registered_as_defaults_and_built_by_name():
    for cls in (RLPRAnswerLogprobs, UnconditionedLogprobs, SelfRewardProbe, HintedContext, OffPolicyRows,
                InitialPolicyRows, NoisyBranchRows, VisualDependency):
        assert all(PROVIDERS[slot] is cls for slot in cls.provides)
    built = build_providers([{"OffPolicyRows": {"tolerance": 0.5}}, "rlobj.train.providers.NoisyBranchRows",
                             {"RLPRAnswerLogprobs": {"open_tag": "="}}])
    assert built[0].tolerance == 0.5 and isinstance(built[1], NoisyBranchRows) and built[2].open_tag == "="


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


# --------------------------------------------------------------------------- RL-PLUS
def _off_policy_batch(module, step=0):
    batch = _batch(module)
    shifted = batch.rollout.logp_rollout.clone()
    shifted[[2, 7]] -= 0.5 * batch.rollout.response_mask[[2, 7]]
    import dataclasses

    return Batch(rollout=dataclasses.replace(batch.rollout, logp_rollout=shifted), records=batch.records,
                 scores=batch.scores, on_policy=False)


def test_off_policy_rows_by_mismatch_and_by_record():
    module = tiny_module()
    batch = _off_policy_batch(module)
    batch.records[11] = {**batch.records[11], "off_policy": True}
    out = _ready(OffPolicyRows()).batch(module.context(0), batch, _inputs(module, batch))["extras:off_policy"]
    mask = batch.rollout.response_mask
    assert out.dtype == torch.bool and out.shape == mask.shape
    assert torch.equal(out.any(-1), torch.isin(torch.arange(16), torch.tensor([2, 7, 11])))
    assert torch.equal(out[[2, 7, 11]], mask[[2, 7, 11]])
    quiet = OffPolicyRows(tolerance=1.0, record_key=None).batch(None, batch, _inputs(module, batch))
    assert not quiet["extras:off_policy"].any()


def test_mis_exploration_pg_trains_through_the_module():
    chain = group_zscore() >> mis_exploration_pg() >> token_mean()
    with_rows, metrics = _update(chain, _off_policy_batch)
    assert metrics["rlplus/off_policy_frac"] > 0
    without, quiet = _update(chain, _off_policy_batch, providers=[OffPolicyRows(tolerance=10.0)])
    assert quiet["rlplus/off_policy_frac"] == 0
    assert _differ(with_rows, without) > 1e-6


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


# --------------------------------------------------------------------------- DPH-RL
def _dph_rewards(step):
    rewards = synthetic_rewards(16, seed=step)
    rewards[4:8] = 1.0  # group 1 solved 4/4
    return rewards


def test_solved_groups_and_the_initial_policy_buffer():
    assert solved_groups(torch.tensor([1.0, 1, 0, 1, 1, 1]), torch.tensor([0, 0, 1, 1, 2, 2])) == [[0, 1], [4, 5]]
    module = tiny_module()
    ctx = module.context(0)
    transform = InitialPolicySamples(groups_per_step=1)
    first = transform(ctx, _batch(module, rewards=_dph_rewards(0)))
    assert len(first) == 16 and first.extras["dph_rows"].tolist() == [False] * 4 + [True] * 4 + [False] * 8
    reference, _ = module.models.no_grad_logprobs(first.rollout, module.models.reference)
    assert torch.equal(first.extras["logp_init"], reference)
    stored = first.rollout.response_ids[4:8]
    with torch.no_grad():
        for p in module.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    later = _batch(module, seed=1, rewards=_dph_rewards(1))
    later.extras["other"] = torch.ones(16)
    second = transform(module.context(1), later)
    assert len(second) == 20 and not second.on_policy and second.metrics["dph/appended_rows"] == 4
    assert second.extras["dph_rows"].tolist() == [False] * 16 + [True] * 4
    assert torch.equal(second.rollout.response_ids[16:, :stored.shape[1]], stored)
    assert torch.allclose(second.extras["logp_init"][16:, :stored.shape[1]], first.extras["logp_init"][4:8])
    assert second.extras["other"][16:].eq(0).all() and second.rollout.group_ids[16:].unique().numel() == 1
    assert [s.reward for s in second.scores[16:]] == [1.0] * 4
    restored = InitialPolicySamples()
    restored.load_state_dict(transform.state_dict())
    third = restored(module.context(2), _batch(module, seed=2, rewards=_dph_rewards(2)))
    assert third.extras["dph_rows"].sum() == 4 and len(third) == 20


def test_initial_policy_rows_without_the_transform():
    module = tiny_module()
    provider = _ready(InitialPolicyRows())
    batch = _batch(module, rewards=_dph_rewards(0))
    out = provider.batch(module.context(0), batch, _inputs(module, batch))
    assert out["extras:dph_rows"].tolist() == [False] * 4 + [True] * 4 + [False] * 8
    assert torch.allclose(out["extras:logp_init"], _inputs(module, batch)["logp_old"])  # pi_0 = the policy at step 0
    with pytest.warns(UserWarning, match="InitialPolicySamples"):
        later = provider.batch(module.context(1), batch, _inputs(module, batch))
    assert not later["extras:dph_rows"].any()
    batch.extras.update(dph_rows=torch.ones(16, dtype=torch.bool), logp_init=torch.zeros(16, 6))
    assert provider.batch(module.context(2), batch, {}) == {}


def test_dph_divergence_trains_on_the_stored_samples():
    def run(eta):
        return _update(GRPO >> dph_divergence(eta=eta), lambda m, s: _batch(m, seed=s, rewards=_dph_rewards(s)),
                       steps=2, transforms=[InitialPolicySamples()])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the transform supplies the rows: no fallback warning
        with_term, metrics = run(0.5)
    assert metrics["dph/rows_frac"] == pytest.approx(4 / 20) and metrics["dph/forward"] > 0
    without, _ = run(0.0)
    assert _differ(with_term, without) > 1e-6


# --------------------------------------------------------------------------- VOGUE
def test_noisy_branch_rows_per_row_draws():
    module = tiny_module()
    batch = _batch(module)
    provider = NoisyBranchRows(start=0.6, end=0.1, total_steps=10)
    ctx = module.context(4)
    flags = provider.batch(ctx, batch, {})["extras:noisy_branch"]
    p = annealed_branch_probability(4, 10, 0.6, 0.1)
    assert provider.probability(4) == p == pytest.approx(0.4)
    expected = [bool(noisy_branch_rows(1, p, seed=_seed(ctx.seed, b), step=4)[0]) for b in range(16)]
    assert flags.dtype == torch.bool and flags.tolist() == expected and 0 < flags.sum() < 16
    small = provider.batch(ctx, batch.select(range(5)), {})["extras:noisy_branch"]
    assert torch.equal(small, flags[:5])  # a row's draw depends on nothing but (seed, step, global row)
    ctx.row_offset = 5  # the same rows on a later rank: the draws of global rows 5..9
    assert torch.equal(provider.batch(ctx, batch.select(range(5, 10)), {})["extras:noisy_branch"], flags[5:10])
    ctx.row_offset = 0
    assert not torch.equal(provider.batch(module.context(5), batch, {})["extras:noisy_branch"], flags)
    assert not NoisyBranchRows(start=0.5, total_steps=2).batch(module.context(2), batch, {})["extras:noisy_branch"].any()


def test_vogue_bonus_trains_through_the_module():
    def chain(rows):
        return group_zscore() >> vogue_bonus(lambda_u=5.0, cap=0.5, rows=rows) >> clip_ratio() >> token_mean()

    providers = [NoisyBranchRows(start=0.5)]
    with_rows, metrics = _update(chain("noisy_branch"), lambda m, s: _batch(m), providers=providers)
    assert 0 < metrics["vogue/noisy_fraction"] < 1 and metrics["vogue/bonus"] > 0
    _, none = _update(chain("noisy_branch"), lambda m, s: _batch(m), providers=[NoisyBranchRows(start=0.0)])
    assert none["vogue/bonus"] == 0
    assert _away_from_grpo(with_rows) > 1e-6


# --------------------------------------------------------------------------- VPPO
def test_visual_dependency_is_the_terms_function_of_the_perturbed_pass():
    module = tiny_module(update=dict(micro_batch_size=5))
    batch = _batch(module)
    ctx = module.context(3)
    inputs = _inputs(module, batch)
    perturbed = _ready(PerturbedContext()).batch(ctx, batch, inputs)["extras:logp_perturbed"]
    out = _ready(VisualDependency()).batch(ctx, batch, inputs)["extras:visual_dependency"]
    mask = batch.rollout.response_mask
    assert torch.equal(out, visual_dependency(perturbed, inputs["logp_old"], mask))
    assert out[mask].gt(0).any() and out[~mask].eq(0).all()
    given = dict(inputs, extras={"logp_perturbed": inputs["logp_old"] - 1.0 * mask})
    reused = _ready(VisualDependency()).batch(ctx, batch, given)["extras:visual_dependency"]
    assert torch.allclose(reused[mask], torch.full_like(reused[mask], math.exp(-1.0)))


@pytest.mark.parametrize("term", ["shaping", "pivotal"])
def test_vppo_terms_train_through_the_module(term):
    if term == "shaping":
        chain = group_zscore() >> dependency_advantage_shaping(beta_min=0.5) >> clip_ratio() >> token_mean()
        key = "vppo/alpha_max"
    else:
        chain = GRPO >> pivotal_token_mask(k=0.4)
        key = "vppo/pivotal_frac"
    with_term, metrics = _update(chain, lambda m, s: _batch(m))
    assert key in metrics and 0 < metrics[key] and (term == "shaping" or metrics[key] < 1)
    assert _away_from_grpo(with_term) > 1e-6
