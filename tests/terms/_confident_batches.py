"""A float64 batch with padding where half the tokens are nearly certain, shared by the tests of
mastered_positive_mask (tests/terms/masks/test_token_selection.py) and clip_cov / kl_cov
(tests/terms/surrogates/test_covariance.py)."""

import torch
from batches import F64, padded_start
from hypothesis import strategies as st


@st.composite
def confident_batches(draw):
    """float64 batch with padding (garbage behind it); probabilities often near 1; binary rewards."""
    g, mask = padded_start(draw, 5, 7, keep=0.8)
    b, n = mask.shape
    # half the tokens nearly certain (p in [0.98, 1)), half anywhere
    confident = torch.rand(b, n, generator=g) < 0.5
    logp_old = torch.where(confident, -torch.rand(b, n, generator=g, dtype=F64) * 0.02 - 1e-4,
                           -torch.rand(b, n, generator=g, dtype=F64) * 3 - 1e-3)
    logp = torch.clamp(logp_old + (torch.rand(b, n, generator=g, dtype=F64) * 2 - 1) * 0.4, max=-1e-4)
    advantages = torch.randn(b, generator=g, dtype=F64)[:, None] * 2 + 0.5 * torch.randn(b, n, generator=g, dtype=F64)
    entropy = torch.rand(b, n, generator=g, dtype=F64) * 0.5
    rewards = (torch.rand(b, generator=g) < 0.6).to(F64)
    pad = ~mask
    return {"logp": torch.where(pad, 4.0, logp), "logp_old": torch.where(pad, float("nan"), logp_old),
            "advantages": torch.where(pad, 1e6, advantages), "mask": mask, "rewards": rewards,
            "entropy": torch.where(pad, float("nan"), entropy)}


def confident_kw(batch, grad=False):
    out = dict(batch)
    out["logp"] = batch["logp"].clone().requires_grad_(grad)
    return out


def valid(batch):
    mask = batch["mask"].tolist()
    return [(i, j) for i, row in enumerate(mask) for j, m in enumerate(row) if m]
