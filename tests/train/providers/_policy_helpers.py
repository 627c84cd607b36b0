"""Shared helpers of the policy-extras providers' tests (test_policy_extras.py, test_policy_extras_rows.py):
a synthetic batch, a plain-loop log-prob, one RL update of a fresh tiny module and its distance from
plain GRPO's."""

import functools
import math

import torch
from train._helpers import synthetic_rewards, synthetic_rollout, tiny_module

from rlobj import (
    clip_ratio,
    group_zscore,
    token_mean,
)
from rlobj.train.stages import Batch, Score

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
