"""Issue 14, the trainer's half of the reference fixes: Lp-Reg's proxy renormalised at the
rollout temperature, SIREN's anchor from the whole first rollout batch, DAPO's group filter on
the accuracy. Each compares with a plain loop over the full logits of the tiny model."""

import math

import pytest
import torch

from rlobj.train.providers import Accuracy, LpRegProxy, SirenAnchor
from rlobj.train.stages import Batch, Score

from ._forward_refs import batch_of, full_logits
from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module


def test_lp_reg_proxy_is_renormalised_at_the_sampling_temperature():
    # Lp-Reg-dev dp_actor.py: apply_min_p on the raw logits, then logits / T, then log-softmax
    temperature = 0.7
    module = tiny_module(objective=["grpo", {"lp_reg": {"tau": 0.5, "rho": 0.5}}], rollout={"temperature": temperature})
    rollout = synthetic_rollout(module)
    proxy = LpRegProxy(tau=0.5, mode="minp").batch(module.context(0), batch_of(rollout), {})["extras:logp_proxy"]
    raw = full_logits(module, rollout).double()
    checked = 0
    for i in range(len(rollout)):
        for t in range(rollout.response_ids.shape[1]):
            if not rollout.response_mask[i, t]:
                continue
            p = torch.softmax(raw[i, t], -1)
            kept = p >= 0.5 * p.max()
            token = int(rollout.response_ids[i, t])
            if not kept[token]:
                assert float(proxy[i, t]) == -1e4
                continue
            scaled = torch.where(kept, raw[i, t] / temperature, torch.full_like(raw[i, t], -math.inf))
            expected = float(torch.log_softmax(scaled, -1)[token])
            assert float(proxy[i, t]) == pytest.approx(expected, abs=1e-4), (i, t)
            checked += 1
    assert checked > 0
    # an explicit temperature wins over the run's
    at_one = LpRegProxy(tau=0.5, mode="minp", temperature=1.0).batch(module.context(0), batch_of(rollout), {})
    assert not torch.allclose(at_one["extras:logp_proxy"], proxy)


def _siren_reference_anchor(module, rollout, p=0.8, quantile=0.8):
    """The reference's anchor: mean over all responses of each one's mean top-p entropy over its
    tokens above the row's 0.8-quantile (ray_trainer.py, global_steps == 1), full logits."""
    logits = full_logits(module, rollout, module.models.temperature).double()
    probs = torch.softmax(logits, -1)
    sorted_p = torch.sort(probs, -1, descending=True).values
    means = []
    for i in range(len(rollout)):
        valid = rollout.response_mask[i].bool()
        entropies = []
        for t in range(logits.shape[1]):
            if not valid[t]:
                continue
            keep = int((sorted_p[i, t].cumsum(-1) < p).sum())
            q = sorted_p[i, t, :keep]
            q = q / q.sum() if keep else q
            entropies.append(float(-(q * q.log()).sum()) if keep else 0.0)
        values = torch.tensor(entropies, dtype=torch.float64)
        cut = torch.quantile(values, quantile)
        peak = values > cut
        means.append(float(values[peak].mean()) if peak.any() else 0.0)
    return sum(means) / len(means)


def test_siren_anchor_is_the_whole_first_rollout_batch():
    # four mini-batches of four responses: the anchor must be the whole batch's value, not the
    # first mini-batch's (the old behaviour)
    module = tiny_module(objective=["grpo", {"siren": {"coef": 0.5}}], update={"mini_batch_size": 4, "micro_batch_size": 2})
    rollout = synthetic_rollout(module)
    expected = _siren_reference_anchor(module, rollout)
    provider = [p for p in module.providers if isinstance(p, SirenAnchor)]
    assert provider and provider[0].needed == {"extras:siren_anchor"}
    module.update_on_rollout(rollout, synthetic_rewards(16))
    (anchor,) = [v for k, v in module.term_state.items() if k.endswith("siren")]
    assert anchor == pytest.approx(expected, abs=1e-5)
    # the second batch keeps the first batch's anchor
    module.update_on_rollout(synthetic_rollout(module, seed=1), synthetic_rewards(16, seed=1))
    (again,) = [v for k, v in module.term_state.items() if k.endswith("siren")]
    assert again == anchor


def test_accuracy_provider_prefers_the_score_field_then_the_reward():
    module = tiny_module(objective="dapo")
    rollout = synthetic_rollout(module)
    rewards = synthetic_rewards(16)
    scored = Batch(rollout=rollout, records=[{"prompt": ""}] * 16,
                   scores=[Score(reward=float(r) - 0.25, fields={"accuracy": float(r)}) for r in rewards])
    got = Accuracy().batch(module.context(0), scored, {})["extras:accuracy"]
    torch.testing.assert_close(got, rewards.float())
    plain = Batch(rollout=rollout, records=[{"prompt": ""}] * 16,
                  scores=[Score(reward=float(r)) for r in rewards])
    torch.testing.assert_close(Accuracy().batch(module.context(0), plain, {})["extras:accuracy"], plain.rewards.float())
    assert [p for p in module.providers if isinstance(p, Accuracy)]


@pytest.mark.parametrize("name", ["forking_tokens_recipe", "siren_recipe", "clip_cov_recipe", "kl_cov_recipe", "laser_recipe"])
def test_reference_scope_recipes_depend_on_the_micro_batch_size(name):
    # the recipes use the reference's per-micro-batch selection / regulariser on purpose; their
    # docstrings say the gradient then depends on the micro-batch size: it does (the law-abiding
    # form passes tests/train/test_pipeline_laws.py)
    from .pipeline_cases import objective_for, weights_after

    objective = objective_for(name, reference_scope=True)
    assert any(getattr(t, "scope", None) == "micro_batch" for t in objective.terms)
    whole = weights_after(name, None, 2, objective=objective)
    split = weights_after(name, 7, 2, objective=objective)
    assert max(float((whole[k] - split[k]).abs().max()) for k in whole) > 1e-6
