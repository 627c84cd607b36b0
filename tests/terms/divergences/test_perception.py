"""PAPO perception KL and VOGUE's symmetric KL (rlobj/terms/divergences/perception.py)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from terms._perception_helpers import fields, k3_loop, run, sym_kl_loop

from rlobj import (
    perception_kl,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import VocabView
from rlobj.terms.divergences import symmetric_kl

# ------------------------------------------------------------------------------------------
# PAPO perception KL
# ------------------------------------------------------------------------------------------


def test_perception_kl_hand_values():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    logp_perturbed = torch.tensor([[-2.0, -2.0]])
    out = run(perception_kl(gamma=0.5), logp, torch.ones(1, 2, dtype=torch.bool), logp_perturbed=logp_perturbed)
    kl = math.exp(-1) + 1 - 1  # d = -1 on the first token, 0 on the second
    torch.testing.assert_close(out.metrics["perception/kl"], torch.tensor(kl / 2))
    torch.testing.assert_close(out.loss, torch.tensor(-0.5 * kl / 2))
    out.loss.backward()
    # d(k3)/d(logp) = 1 - exp(d): (1 - e^-1) on token 0, 0 on token 1; times -gamma / 2 tokens
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5 * (1 - math.exp(-1)) / 2, 0.0]]))


def test_perception_kl_full_vocab_hand_value():
    logits = torch.tensor([[[0.0, 0.0]]])
    logits_perturbed = torch.tensor([[[math.log(3.0), 0.0]]])  # (3/4, 1/4)
    out = run(perception_kl(gamma=1.0, estimator="full"), torch.log(torch.tensor([[0.5]])),
              torch.ones(1, 1, dtype=torch.bool), vocab=VocabView.from_logits(logits),
              vocab_perturbed=VocabView.from_logits(logits_perturbed))
    kl = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL(pi || perturbed)
    torch.testing.assert_close(out.loss, torch.tensor(-kl))


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), gamma=st.floats(0.0, 2.0), clamp=st.sampled_from([None, 0.2]))
def test_perception_kl_matches_loop(seed, gamma, clamp):
    f = fields(3, 4, seed)
    logp = f["logp"].double()
    out = run(perception_kl(gamma=gamma, clamp_max=clamp), logp, f["mask"], logp_perturbed=f["logp_perturbed"].double())
    reference = k3_loop(logp, f["logp_perturbed"], f["mask"])
    if clamp is not None:
        reference = reference.clamp(0.0, clamp)
    expected = -gamma * reference[f["mask"]].mean()
    torch.testing.assert_close(out.loss, expected)
    assert float(out.metrics["perception/kl"]) >= 0


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000))
def test_perception_kl_full_matches_loop(seed):
    f = fields(2, 3, seed)
    out = run(perception_kl(gamma=1.0, estimator="full"), f["logp"].double(), f["mask"],
              vocab=VocabView.from_logits(f["logits"].double()),
              vocab_perturbed=VocabView.from_logits(f["logits_perturbed"].double()))
    reference = torch.zeros(f["mask"].shape, dtype=torch.float64)
    for i in range(2):
        for t in range(3):
            p = torch.softmax(f["logits"][i, t].double(), -1)
            q = torch.softmax(f["logits_perturbed"][i, t].double(), -1)
            reference[i, t] = sum(float(p[v]) * math.log(float(p[v] / q[v])) for v in range(5))
    torch.testing.assert_close(out.loss, -reference[f["mask"]].mean())
    assert float(out.metrics["perception/kl"]) >= 0


def test_perception_kl_gradcheck():
    f = fields(2, 3, 1)
    logp_perturbed = f["logp_perturbed"].double()

    def loss(logp):
        return run(perception_kl(gamma=0.3), logp, f["mask"], logp_perturbed=logp_perturbed).loss

    assert torch.autograd.gradcheck(loss, (f["logp"].double().requires_grad_(True),))
    logits = f["logits"].double().requires_grad_(True)

    def full(logits):
        view = VocabView.from_logits(logits)
        return run(perception_kl(gamma=0.3, estimator="full"), f["logp"].double(), f["mask"], vocab=view,
                   vocab_perturbed=VocabView.from_logits(f["logits_perturbed"].double())).loss

    assert torch.autograd.gradcheck(full, (logits,))


def test_perception_kl_zero_without_perturbation_is_exactly_zero():
    f = fields(2, 3, 4)
    logp = f["logp"].clone().requires_grad_(True)
    out = run(perception_kl(gamma=0.02), logp, f["mask"], logp_perturbed=f["logp"].clone())
    assert float(out.loss) == 0.0 and float(out.metrics["perception/kl"]) == 0.0
    out.loss.backward()
    assert float(logp.grad.abs().max()) == 0.0
    logits = f["logits"].clone().requires_grad_(True)
    full = run(perception_kl(gamma=0.02, estimator="full"), f["logp"], f["mask"],
               vocab=VocabView.from_logits(logits), vocab_perturbed=VocabView.from_logits(f["logits"].clone()))
    assert float(full.loss) == 0.0
    full.loss.backward()
    # the full-vocabulary value is exactly 0; its analytic gradient P*(log P - log Q - KL) is 0
    # up to float32 rounding of the two log-normalisers inside VocabView
    assert float(logits.grad.abs().max()) < 1e-8


def test_perception_kl_is_maximised_and_perturbed_branch_detached():
    f = fields(2, 3, 2)
    logp = f["logp"].clone().requires_grad_(True)
    logp_perturbed = f["logp_perturbed"].clone().requires_grad_(True)
    base = run(perception_kl(gamma=0.0), logp, f["mask"], logp_perturbed=logp_perturbed).loss
    assert float(base) == 0.0
    out = run(perception_kl(gamma=0.1), logp, f["mask"], logp_perturbed=logp_perturbed)
    assert float(out.loss) < 0  # minimising -gamma*KL increases the KL
    out.loss.backward()
    assert logp_perturbed.grad is None  # detached by default
    kept = run(perception_kl(gamma=0.1, perturbed_grad=True), logp, f["mask"], logp_perturbed=logp_perturbed)
    kept.loss.backward()
    assert logp_perturbed.grad is not None and float(logp_perturbed.grad.abs().sum()) > 0


def test_perception_kl_bad_input():
    with pytest.raises(RlobjInputError, match="perception_kl.gamma"):
        perception_kl(gamma=-1.0)
    with pytest.raises(RlobjInputError, match="perception_kl.estimator"):
        perception_kl(estimator="k2")
    with pytest.raises(RlobjInputError, match="perception_kl.clamp_max"):
        perception_kl(clamp_max=0.0)
    f = fields()
    with pytest.raises(RlobjInputError, match=r"reads extras\['logp_perturbed'\]"):
        run(perception_kl(), f["logp"], f["mask"])
    with pytest.raises(RlobjInputError, match=r"extras\['logp_perturbed'\].*\(batch seq\)"):
        run(perception_kl(), f["logp"], f["mask"], logp_perturbed=torch.zeros(2, 4))
    with pytest.raises(RlobjInputError, match="must be <= 0"):
        run(perception_kl(), f["logp"], f["mask"], logp_perturbed=torch.ones(2, 3))
    with pytest.raises(RlobjInputError, match=r"logp_perturbed.*(NaN|finite)"):
        run(perception_kl(), f["logp"], f["mask"], logp_perturbed=torch.full((2, 3), math.nan))
    with pytest.raises(RlobjInputError, match=r"extras\['vocab_perturbed'\]"):
        run(perception_kl(estimator="full"), f["logp"], f["mask"], vocab=VocabView.from_logits(f["logits"]))


# ------------------------------------------------------------------------------------------
# VOGUE symmetric KL and bonus
# ------------------------------------------------------------------------------------------


def test_symmetric_kl_hand_value():
    p = VocabView.from_logits(torch.tensor([[[0.0, 0.0]]]))
    q = VocabView.from_logits(torch.tensor([[[math.log(3.0), 0.0]]]))
    forward = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    reverse = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    torch.testing.assert_close(symmetric_kl(p, q)[0, 0], torch.tensor(0.5 * (forward + reverse)))
    torch.testing.assert_close(symmetric_kl(p, q, scale=1.0)[0, 0], torch.tensor(forward + reverse))


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), shift=st.floats(-5, 5))
def test_symmetric_kl_properties_and_loop(seed, shift):
    f = fields(2, 3, seed)
    p, q = f["logits"].double(), f["logits_perturbed"].double()
    got = symmetric_kl(VocabView.from_logits(p), VocabView.from_logits(q), mask=f["mask"])
    torch.testing.assert_close(got, sym_kl_loop(p, q, f["mask"]))
    swapped = symmetric_kl(VocabView.from_logits(q), VocabView.from_logits(p), mask=f["mask"])
    torch.testing.assert_close(got, swapped)  # symmetric
    assert bool((got >= 0).all())
    shifted = symmetric_kl(VocabView.from_logits(p + shift), VocabView.from_logits(q), mask=f["mask"])
    torch.testing.assert_close(shifted, got)  # invariant to a constant added to the logits
    same = symmetric_kl(VocabView.from_logits(p), VocabView.from_logits(p.clone()), mask=f["mask"])
    assert float(same.abs().max()) == 0.0


def test_symmetric_kl_gradcheck():
    f = fields(1, 2, 7)
    q = VocabView.from_logits(f["logits_perturbed"].double())

    def value(logits):
        return symmetric_kl(VocabView.from_logits(logits), q).sum()

    assert torch.autograd.gradcheck(value, (f["logits"].double().requires_grad_(True),))
