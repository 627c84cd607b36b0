"""Importance-weight corrections of a rollout/trainer mismatch (rlobj/terms/masks/importance_weights.py:
truncated_is, masked_is, geometric_is_mask): hand values, plain-loop references on Hypothesis batches
(with the gradient for the truncated weights), and weight one leaving the loss unchanged."""


import math

import pytest
import torch
from batches import t
from hypothesis import given
from hypothesis import strategies as st
from terms.surrogates._pg_references import (
    base_kw,
    batches,
    compare,
    fields,
    policy_values,
    ppo_grad_ref,
    ref_clip_ratio,
    ref_reinforce,
    valid,
    zeros_like_mask,
)

from rlobj.ops.errors import RlobjInputError
from rlobj.terms.masks import geometric_is_mask, masked_is, truncated_is
from rlobj.terms.surrogates import (
    clip_ratio,
    reinforce,
)


def ref_log_weights(batch, level):
    mask, _, lo, _ = valid(batch)
    roll = batch["logp_rollout"].tolist()
    out = zeros_like_mask(mask)
    for i, row in enumerate(mask):
        seq = sum(lo[i][j] - roll[i][j] for j, m in enumerate(row) if m)
        for j, m in enumerate(row):
            if m:
                out[i][j] = seq if level == "sequence" else lo[i][j] - roll[i][j]
    return out


def test_truncated_is_hand_values():
    # base reinforce: -A logp = [log 2, log 4]  (A=1, logp = log .5, log .25)
    # token weights: pi_old/pi_rollout = .5/.25 = 2 -> min(2, 1.5) = 1.5 ; .25/.5 = .5
    logp = torch.log(t([[0.5, 0.25]]))
    kw = {"logp": logp, "logp_old": logp, "mask": torch.ones(1, 2, dtype=torch.bool),
          "advantages": t([[1.0, 1.0]]), "extras": {"logp_rollout": torch.log(t([[0.25, 0.5]]))}}
    out = (reinforce() >> truncated_is(cap=1.5)).loss(**kw)
    assert policy_values(out)[0].tolist() == pytest.approx([1.5 * math.log(2), 0.5 * math.log(4)])
    assert float(out.metrics["is/truncated_frac"]) == pytest.approx(0.5)
    # sequence level: w = 2 * 0.5 = 1 on both tokens -> unchanged
    out = (reinforce() >> truncated_is(cap=1.5, level="sequence")).loss(**kw)
    assert policy_values(out)[0].tolist() == pytest.approx([math.log(2), math.log(4)])


def test_masked_is_and_geometric_mask_hand_values():
    # token weights [2.5, 0.5, 1.0]; masked_is [0.5, 2]: drop token 0; loss sums kept / 3 tokens
    logp_old = torch.log(t([[0.5, 0.25, 0.3]]))
    kw = {"logp": logp_old, "logp_old": logp_old, "mask": torch.ones(1, 3, dtype=torch.bool),
          "advantages": t([[1.0, 1.0, 1.0]]),
          "extras": {"logp_rollout": torch.log(t([[0.2, 0.5, 0.3]]))}}
    out = (reinforce() >> masked_is()).loss(**kw)
    assert out.state.parts["policy"].mask.tolist() == [[False, True, True]]
    assert float(out.loss.detach()) == pytest.approx((math.log(4) - math.log(0.3)) / 3)
    assert float(out.metrics["is/masked_frac"]) == pytest.approx(1 / 3)
    # sequence product 2.5*0.5*1 = 1.25 in [0.5, 2]: nothing dropped
    out = (reinforce() >> masked_is(level="sequence")).loss(**kw)
    assert out.state.parts["policy"].mask.tolist() == [[True, True, True]]
    # geometric mean 1.25^(1/3) = 1.077 in [0.5, 2]: kept; with high=1.05 the sequence is dropped
    assert (reinforce() >> geometric_is_mask()).loss(**kw).state.parts["policy"].mask.all()
    out = (reinforce() >> geometric_is_mask(high=1.05)).loss(**kw)
    assert not out.state.parts["policy"].mask.any()
    assert float(out.metrics["is/rejected_seq_frac"]) == 1.0


@given(batches(), st.sampled_from(["token", "sequence"]), st.sampled_from([0.8, 2.0]))
def test_truncated_is_matches_loop_reference_and_gradient(batch, level, cap):
    base = ref_clip_ratio(batch)
    log_w = ref_log_weights(batch, level)
    mask = batch["mask"].tolist()
    expected = [[min(math.exp(log_w[i][j]), cap) * base[i][j] if m else 0.0 for j, m in enumerate(row)]
                for i, row in enumerate(mask)]
    f = fields(batch, rollout=True, grad=True)
    out = (clip_ratio() >> truncated_is(cap=cap, level=level)).loss(**f)
    compare(out, expected, mask)
    out.loss.backward()
    # the weight is a constant: gradient = weight * base gradient
    base_grad = ppo_grad_ref(batch, 0.2, 0.2, None)
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            w = min(math.exp(log_w[i][j]), cap) if m else 0.0
            assert float(f["logp"].grad[i, j]) == pytest.approx(w * base_grad[i][j], rel=1e-8, abs=1e-15)


@given(batches(), st.sampled_from(["token", "sequence"]), st.sampled_from([(0.5, 2.0), (0.9, 1.1)]))
def test_masked_is_matches_loop_reference(batch, level, bounds):
    low, high = bounds
    base = ref_reinforce(batch)
    log_w = ref_log_weights(batch, level)
    mask = batch["mask"].tolist()
    kept = [[m and low <= math.exp(log_w[i][j]) <= high for j, m in enumerate(row)] for i, row in enumerate(mask)]
    f = fields(batch, rollout=True, grad=True)
    out = (reinforce() >> masked_is(low=low, high=high, level=level)).loss(**f)
    assert out.state.parts["policy"].mask.tolist() == kept
    total = sum(base[i][j] for i, row in enumerate(kept) for j, k in enumerate(row) if k)
    # dropped tokens stay in the normaliser (all valid tokens)
    assert float(out.loss.detach()) == pytest.approx(total / max(sum(map(sum, mask)), 1), rel=1e-9, abs=1e-12)
    out.loss.backward()
    for i, row in enumerate(kept):
        for j, k in enumerate(row):
            if not k:
                assert float(f["logp"].grad[i, j]) == 0.0


@given(batches(), st.sampled_from([(0.5, 2.0), (0.9, 1.1)]))
def test_geometric_is_mask_matches_loop_reference(batch, bounds):
    low, high = bounds
    mask, _, lo, _ = valid(batch)
    roll = batch["logp_rollout"].tolist()
    out = (reinforce() >> geometric_is_mask(low=low, high=high)).loss(**fields(batch, rollout=True))
    rejected = 0
    for i, row in enumerate(mask):
        idx = [j for j, m in enumerate(row) if m]
        mean = math.exp(sum(lo[i][j] - roll[i][j] for j in idx) / max(len(idx), 1))
        keep = low <= mean <= high
        rejected += bool(idx) and not keep
        assert out.state.parts["policy"].mask[i].tolist() == [m and keep for m in row]
    assert float(out.metrics["is/rejected_seq_frac"]) == pytest.approx(rejected / len(mask))


@given(batches(), st.sampled_from(["truncated_token", "truncated_sequence", "masked_token",
                                   "masked_sequence", "geometric"]))
def test_is_weight_one_leaves_the_loss_unchanged(batch, which):
    correction = {"truncated_token": truncated_is(), "truncated_sequence": truncated_is(level="sequence"),
                  "masked_token": masked_is(), "masked_sequence": masked_is(level="sequence"),
                  "geometric": geometric_is_mask()}[which]
    same = dict(batch, logp_rollout=batch["logp_old"].clone())
    f1, f2 = fields(same, rollout=True, grad=True), fields(same, grad=True)
    a = (clip_ratio() >> correction).loss(**f1)
    b = clip_ratio().loss(**f2)
    torch.testing.assert_close(a.loss, b.loss)
    a.loss.backward()
    b.loss.backward()
    torch.testing.assert_close(f1["logp"].grad, f2["logp"].grad)


@pytest.mark.parametrize("correction", [truncated_is(), masked_is(), geometric_is_mask()],
                         ids=lambda s: type(s).__name__)
def test_corrections_missing_inputs(correction):
    name = type(correction).__name__
    with pytest.raises(RlobjInputError, match="logp_rollout") as info:
        (reinforce() >> correction).loss(**base_kw())
    assert name in str(info.value)
    kw = base_kw()
    del kw["logp_old"]
    with pytest.raises(RlobjInputError, match="logp_old"):
        (reinforce() >> correction).loss(**kw, extras={"logp_rollout": kw["logp"]})
    with pytest.raises(RlobjInputError, match="policy"):  # no surrogate before it
        correction.loss(**base_kw(), extras={"logp_rollout": base_kw()["logp"]})
    with pytest.raises(RlobjInputError, match=r"logp_rollout.*\(1, 2\).*\(1, 1\)"):
        (reinforce() >> correction).loss(**base_kw(), extras={"logp_rollout": t([[-0.5]])})
