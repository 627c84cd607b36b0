"""Providers of rlobj/train/providers/policy_extras_rows.py (OffPolicyRows, InitialPolicySamples,
InitialPolicyRows, NoisyBranchRows, VisualDependency): rows and per-row draws, and one RL update per
consuming term whose effect on the weights is checked against the same update without it."""

import math
import warnings

import pytest
import torch
from train._helpers import synthetic_rewards, tiny_module
from train.providers._policy_helpers import (
    GRPO,
    _away_from_grpo,
    _batch,
    _differ,
    _inputs,
    _ready,
    _update,
)

from rlobj import (
    clip_ratio,
    dependency_advantage_shaping,
    dph_divergence,
    group_zscore,
    mis_exploration_pg,
    pivotal_token_mask,
    token_mean,
    vogue_bonus,
)
from rlobj.rollout.perception import annealed_branch_probability, noisy_branch_rows
from rlobj.terms.rewards import visual_dependency
from rlobj.train.providers import (
    InitialPolicyRows,
    InitialPolicySamples,
    NoisyBranchRows,
    OffPolicyRows,
    PerturbedContext,
    VisualDependency,
)
from rlobj.train.providers.policy_extras_rows import _seed, solved_groups
from rlobj.train.stages import Batch


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
