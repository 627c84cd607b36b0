"""Inputs and plain-loop references shared by the policy-gradient surrogate tests
(tests/terms/surrogates/test_policy_gradient.py) and the importance-weight corrections' tests
(tests/terms/masks/test_importance_weights.py): Hypothesis batches, the loss fields, per-token loops
of REINFORCE and PPO-clip and of PPO's gradient."""


import math

import pytest
import torch
from batches import F64, t
from hypothesis import strategies as st


def policy_values(out):
    return out.state.parts["policy"].values


# --------------------------------------------------------------------------- inputs
@st.composite
def batches(draw, nonempty_rows=False, per_sequence_adv=False):
    """Random float64 batch: mask with padding (garbage behind it), ratios in/out of the clip."""
    b = draw(st.integers(1, 4))
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    layout = draw(st.sampled_from(["full", "right", "random"]))
    spread = draw(st.sampled_from([0.05, 0.4, 1.5]))
    g = torch.Generator().manual_seed(seed)
    if layout == "full":
        mask = torch.ones(b, n, dtype=torch.bool)
    elif layout == "right":
        lengths = torch.randint(0 if not nonempty_rows else 1, n + 1, (b,), generator=g)
        mask = torch.arange(n)[None, :] < lengths[:, None]
    else:
        mask = torch.rand(b, n, generator=g) < 0.7
    if nonempty_rows:
        mask[:, 0] = True
    mask[0, 0] = True  # an all-padding batch is refused by the aggregation (tested there)
    logp_old = -torch.rand(b, n, generator=g, dtype=F64) * 3.0 - 0.05
    log_ratio = (torch.rand(b, n, generator=g, dtype=F64) * 2 - 1) * spread
    logp = torch.clamp(logp_old + log_ratio, max=-1e-3)
    if per_sequence_adv:
        per_seq = torch.randn(b, generator=g, dtype=F64) * 1.5
        per_seq[torch.rand(b, generator=g) < 0.1] = 0.0
        advantages = per_seq[:, None].expand(b, n).clone()
    else:
        advantages = torch.randn(b, n, generator=g, dtype=F64) * 1.5
        advantages[torch.rand(b, n, generator=g) < 0.1] = 0.0
    logp_rollout = logp_old + (torch.rand(b, n, generator=g, dtype=F64) * 2 - 1) * spread
    # garbage in padding: must never reach values or gradients
    logp = torch.where(mask, logp, torch.full_like(logp, 3.0))
    logp_old = torch.where(mask, logp_old, torch.full_like(logp_old, float("nan")))
    advantages = torch.where(mask, advantages, torch.full_like(advantages, 1e6))
    logp_rollout = torch.where(mask, logp_rollout, torch.full_like(logp_rollout, float("nan")))
    return {"logp": logp, "logp_old": logp_old, "advantages": advantages, "mask": mask,
            "logp_rollout": logp_rollout}


def fields(batch, rollout=False, grad=False):
    logp = batch["logp"].clone().requires_grad_(grad)
    out = {"logp": logp, "logp_old": batch["logp_old"], "advantages": batch["advantages"],
           "mask": batch["mask"]}
    if rollout:
        out["extras"] = {"logp_rollout": batch["logp_rollout"]}
    return out


def valid(batch):
    """Plain lists and the valid positions of a batch, for the loop references."""
    mask = batch["mask"].tolist()
    return (mask, batch["logp"].tolist(), batch["logp_old"].tolist(), batch["advantages"].tolist())


def clip(x, lo, hi):
    return min(max(x, lo), hi)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def token_mean_ref(per_token, mask):
    total, count = 0.0, 0
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if m:
                total += per_token[i][j]
                count += 1
    return total / max(count, 1)


def compare(out, per_token, mask, rel=1e-9):
    values = policy_values(out).detach()
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if m:
                assert float(values[i, j]) == pytest.approx(per_token[i][j], rel=rel, abs=1e-12)
    assert float(out.loss.detach()) == pytest.approx(token_mean_ref(per_token, mask), rel=rel, abs=1e-12)


def zeros_like_mask(mask):
    return [[0.0] * len(row) for row in mask]


# --------------------------------------------------------------------------- loop references
def per_token(batch, value):
    """Loop reference: ``value(lp, lo, a)`` of each valid token (log-prob, old log-prob,
    advantage), 0 on padding."""
    mask, lp, lo, adv = valid(batch)
    out = zeros_like_mask(mask)
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if m:
                out[i][j] = value(lp[i][j], lo[i][j], adv[i][j])
    return out


def ref_reinforce(batch):
    return per_token(batch, lambda lp, lo, a: -a * lp)


def ref_ppo_token(lp, lo, a, eps_low, eps_high, dual, clamp=20.0):
    r = math.exp(clip(lp - lo, -clamp, clamp))
    loss = max(-a * r, -a * clip(r, 1 - eps_low, 1 + eps_high))
    if dual is not None and a < 0:
        loss = min(loss, -dual * a)
    return loss


def ref_clip_ratio(batch, eps_low=0.2, eps_high=0.2, dual=None):
    return per_token(batch, lambda lp, lo, a: ref_ppo_token(lp, lo, a, eps_low, eps_high, dual))


def active_ppo(r, a, eps_low, eps_high, dual):
    """Whether the PPO loss at this token depends on rho (gradient -A*rho), else gradient 0."""
    if a > 0 and r > 1 + eps_high:
        return False
    if a < 0 and r < 1 - eps_low:
        return False
    if dual is not None and a < 0 and r > dual:
        return False
    return True


def ppo_grad_ref(batch, eps_low, eps_high, dual):
    mask, lp, lo, adv = valid(batch)
    count = max(sum(map(sum, mask)), 1)
    grad = zeros_like_mask(mask)
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if m:
                r, a = math.exp(lp[i][j] - lo[i][j]), adv[i][j]
                grad[i][j] = -a * r / count if active_ppo(r, a, eps_low, eps_high, dual) else 0.0
    return grad


def ref_delta_clip(batch, delta, eps_low=0.2, eps_high=0.2):
    def value(lp, lo, a):
        r = math.exp(lp - lo)
        return -min(min(r, delta) * a, clip(r, 1 - eps_low, 1 + eps_high) * a)

    return per_token(batch, value)


def ref_seq_ratio(lp_row, lo_row, m_row, clamp=10.0):
    diffs = [lp_row[j] - lo_row[j] for j, m in enumerate(m_row) if m]
    return math.exp(min(sum(diffs) / len(diffs), clamp))


def ref_sequence_clip(batch, eps_low=3e-4, eps_high=4e-4):
    mask, lp, lo, adv = valid(batch)
    out = zeros_like_mask(mask)
    for i, row in enumerate(mask):
        if not any(row):
            continue
        s = ref_seq_ratio(lp[i], lo[i], row)
        for j, m in enumerate(row):
            if m:
                a = adv[i][j]
                out[i][j] = max(-a * s, -a * clip(s, 1 - eps_low, 1 + eps_high))
    return out


def ref_geometric_clip(batch, eps=0.4):
    mask, lp, lo, adv = valid(batch)
    out = zeros_like_mask(mask)
    for i, row in enumerate(mask):
        idx = [j for j, m in enumerate(row) if m]
        if not idx:
            continue
        a = sum(adv[i][j] for j in idx) / len(idx)
        sign = (a > 0) - (a < 0)
        kept = []
        for j in idx:
            x = sign * clip(lp[i][j] - lo[i][j], -20, 20)
            kept.append(sign * min(x, clip(x, -eps, eps)))
        ratio = math.exp(sum(kept) / len(kept))
        for j in idx:
            out[i][j] = -a * ratio
    return out


def ref_cispo(batch, eps_low=1.0, eps_high=0.28):
    return per_token(batch, lambda lp, lo, a: -clip(math.exp(lp - lo), 1 - eps_low, 1 + eps_high) * a * lp)


def ref_sapo(batch, tau_pos=1.0, tau_neg=1.05):
    def value(lp, lo, a):
        tau = tau_pos if a > 0 else tau_neg
        return -a * 4.0 / tau * sigmoid(tau * (math.exp(lp - lo) - 1.0))

    return per_token(batch, value)


def base_kw():
    """One row of two tokens, on policy, advantages (+1, -1): the inputs a bad-input test removes from."""
    logp = torch.log(t([[0.5, 0.25]]))
    return {"logp": logp, "logp_old": logp, "mask": torch.ones(1, 2, dtype=torch.bool), "advantages": t([[1.0, -1.0]])}
