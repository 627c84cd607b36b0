"""Shared pieces of the recipe transcriptions (tests/presets/test_recipes.py, test_seed_recipes.py,
test_seed_recipes_2.py): synthetic float64 rollouts, verl's GRPO advantages and clipped policy loss
transcribed with plain torch, the token mean, and :func:`check`, which compares a recipe's loss and
gradient with a transcription's."""

import pytest
import torch

from rlobj.algebra import Objective
from rlobj.presets.recipes import RECIPES

F64 = torch.float64


def rollouts(groups=4, size=4, width=12, seed=0, min_length=2):
    g = torch.Generator().manual_seed(seed)
    batch = groups * size
    lengths = torch.randint(min_length, width + 1, (batch,), generator=g)
    mask = torch.arange(width)[None, :] < lengths[:, None]
    logp_old = -torch.rand(batch, width, generator=g, dtype=F64) * 3 - 0.01
    logp = (logp_old + 0.3 * torch.randn(batch, width, generator=g, dtype=F64)).clamp(max=-1e-3)
    rewards = (torch.rand(batch, generator=g) > 0.5).to(F64)
    rewards[::size] = 1.0
    rewards[1::size] = 0.0  # every group informative
    group_ids = torch.arange(groups).repeat_interleave(size)
    return dict(logp=logp, logp_old=logp_old, mask=mask, rewards=rewards, group_ids=group_ids), g


def grpo_advantages(rewards, group_ids, std=True, eps=1e-6):
    """verl compute_grpo_outcome_advantage: (r - mean) / (std + eps), torch.std (Bessel)."""
    out = torch.zeros_like(rewards)
    for gid in group_ids.unique():
        rows = group_ids == gid
        scores = rewards[rows]
        centred = scores - scores.mean()
        out[rows] = centred / (scores.std() + eps) if std else centred
    return out


def clipped_pg(logp, logp_old, adv, low, high, dual=None):
    """verl compute_policy_loss (vanilla): per-token losses, log-ratio clamped to [-20, 20]."""
    ratio = torch.exp(torch.clamp(logp - logp_old, -20.0, 20.0))
    a = adv[:, None]
    loss1, loss2 = -a * ratio, -a * torch.clamp(ratio, 1 - low, 1 + high)
    clipped = torch.maximum(loss1, loss2)
    if dual is not None:
        clipped = torch.where(a < 0, torch.minimum(-a * dual, clipped), clipped)
    return clipped


def token_mean(values, mask):
    return (values * mask).sum() / mask.sum()


def check(name, batch, reference_loss, objective=None, **extra):
    """Loss and gradient (w.r.t. the policy log-probs) of the recipe (or ``objective``, the recipe
    with a test-size constant) equal the transcription's."""
    leaf = batch["logp"].clone().requires_grad_(True)
    ours = Objective(objective or RECIPES[name].objective)(**{**batch, "logp": leaf, **extra}).loss
    (grad,) = torch.autograd.grad(ours, leaf)
    ref_leaf = batch["logp"].clone().requires_grad_(True)
    theirs = reference_loss(ref_leaf)
    (ref_grad,) = torch.autograd.grad(theirs, ref_leaf)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-9, abs=1e-12), name
    torch.testing.assert_close(grad, ref_grad, rtol=1e-8, atol=1e-12)
    return float(ours)
