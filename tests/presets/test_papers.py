"""The paper presets (rlobj/presets/papers.py): one_shot_rlvr (arXiv 2504.20571) is the paper's
composition, and its entropy term raises the entropy."""

import math

import pytest
import torch
from batches import F64, t

from rlobj import (
    clip_ratio,
    entropy_bonus,
    group_zscore,
    grpo,
    k3_kl,
    one_shot_rlvr,
    token_mean,
)


# =========================================================================== one_shot_rlvr
def test_one_shot_rlvr_is_the_hand_composition():
    # the paper's loss: token-mean PPO-clip + 0.001 * k3 KL - 0.001 * entropy, GRPO advantages
    assert [type(term).__name__ for term in one_shot_rlvr.terms] == [
        "group_zscore", "clip_ratio", "entropy_bonus", "kl_penalty", "token_mean"]
    assert one_shot_rlvr.terms[2].coef == 0.001 and one_shot_rlvr.terms[3].beta == 0.001
    assert one_shot_rlvr.terms[3].estimator == "k3"
    g = torch.Generator().manual_seed(0)
    logp_old = -torch.rand(4, 3, generator=g, dtype=F64) - 0.1
    logp = logp_old + 0.1 * torch.randn(4, 3, generator=g, dtype=F64)
    logp_ref = logp_old - 0.2 * torch.rand(4, 3, generator=g, dtype=F64)
    fields = {"logp": logp, "logp_old": logp_old, "logp_ref": logp_ref, "mask": t([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]]).bool(),
              "entropy": torch.rand(4, 3, generator=g, dtype=F64), "rewards": t([1.0, 0.0, 1.0, 0.0]),
              "group_ids": torch.tensor([0, 0, 1, 1])}
    got = one_shot_rlvr.loss(**fields).loss
    ppo = (group_zscore() >> clip_ratio() >> token_mean()).loss(**fields).loss
    mask = fields["mask"]
    d = (logp_ref - logp)[mask]
    k3 = (d.exp() - d - 1).mean()
    entropy = fields["entropy"][mask].mean()
    assert float(got) == pytest.approx(float(ppo) + 0.001 * float(k3) - 0.001 * float(entropy), rel=1e-12)
    # coefficient 0: the same as the chain without the entropy term
    zero = one_shot_rlvr.replace(entropy_bonus, entropy_bonus(coef=0.0)).loss(**fields).loss
    assert float(zero) == pytest.approx(float((grpo.replace(type(grpo.terms[-1]), token_mean()) >> k3_kl(0.001))
                                               .loss(**fields).loss), rel=1e-12)


def test_one_shot_rlvr_entropy_term_raises_entropy():
    # gradient of -c * H moves the logits toward uniform: one SGD step on the entropy part alone
    logits = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(1), dtype=F64).mul(3).requires_grad_(True)

    def entropy_of(z):
        return -(z.softmax(-1) * z.log_softmax(-1)).sum(-1)

    mask = torch.ones(2, 3, dtype=torch.bool)
    sampled = logits.log_softmax(-1)[..., 0].detach()
    out = entropy_bonus(coef=0.001).loss(logp=sampled, mask=mask, entropy=entropy_of(logits))
    out.loss.backward()
    before = entropy_of(logits).mean()
    after = entropy_of(logits - 50.0 * logits.grad).mean()
    assert float(after) > float(before)
    assert 0 <= float(out.metrics["entropy"]) <= math.log(6)
