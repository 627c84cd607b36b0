"""Perception terms: PAPO perception KL + double entropy, VPPO visual dependency, VOGUE bonus."""

import math

import pytest
import torch
from batches import make_batch
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError

from rlobj import (
    Objective,
    clip_ratio,
    double_entropy,
    group_zscore,
    perception_kl,
    token_mean,
    visual_dependency_score,
    vogue_bonus,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import VocabView
from rlobj.terms.divergences import symmetric_kl
from rlobj.terms.rewards import visual_dependency

# ------------------------------------------------------------------------------------------
# slow references written from the formulas (plain loops, float64)
# ------------------------------------------------------------------------------------------


def k3_loop(logp, logp_other, mask):
    """verl's clamped k3 with d = other - logp, one token at a time."""
    out = torch.zeros(logp.shape, dtype=torch.float64)
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[i, t]:
                d = min(max(float(logp_other[i, t]) - float(logp[i, t]), -20.0), 20.0)
                out[i, t] = min(max(math.exp(d) - d - 1.0, -10.0), 10.0)
    return out


def sym_kl_loop(logits_p, logits_q, mask, scale=0.5):
    out = torch.zeros(mask.shape, dtype=torch.float64)
    for i in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if not mask[i, t]:
                continue
            p = torch.softmax(logits_p[i, t].double(), -1).tolist()
            q = torch.softmax(logits_q[i, t].double(), -1).tolist()
            forward = sum(pv * math.log(pv / qv) for pv, qv in zip(p, q))
            reverse = sum(qv * math.log(qv / pv) for pv, qv in zip(p, q))
            out[i, t] = scale * (forward + reverse)
    return out


def fields(batch_size=2, length=3, seed=0, vocab=5):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch_size, length, vocab, generator=generator)
    logits_perturbed = logits + 0.7 * torch.randn(batch_size, length, vocab, generator=generator)
    tokens = torch.randint(0, vocab, (batch_size, length), generator=generator)
    logp = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]
    logp_perturbed = torch.log_softmax(logits_perturbed, -1).gather(-1, tokens[..., None])[..., 0]
    mask = torch.ones(batch_size, length, dtype=torch.bool)
    mask[-1, -1] = False
    return dict(logits=logits, logits_perturbed=logits_perturbed, logp=logp,
                logp_perturbed=logp_perturbed, mask=mask, tokens=tokens)


def run(term, logp, mask, **extras_and_fields):
    vocab = extras_and_fields.pop("vocab", None)
    rest = {k: extras_and_fields.pop(k) for k in ("advantages", "logp_old", "entropy")
            if k in extras_and_fields}
    return Objective(term >> token_mean())(logp=logp, mask=mask, vocab=vocab, extras=extras_and_fields, **rest)


# ------------------------------------------------------------------------------------------
# VPPO visual dependency
# ------------------------------------------------------------------------------------------


def test_visual_dependency_hand_values():
    logp_old = torch.tensor([[-1.0, -1.0, -1.0, -1.0]])
    logp_perturbed = torch.tensor([[-1.0, -2.0, -0.5, -40.0]])
    # d = 0, -1, 0.5, clamp(-39) = -20
    expected = [0.0, math.exp(-1) + 1 - 1, math.exp(0.5) - 0.5 - 1, math.exp(-20) + 20 - 1]
    expected[3] = 10.0  # S clamped to [0, 10]
    got = visual_dependency(logp_perturbed, logp_old)
    torch.testing.assert_close(got[0], torch.tensor(expected), atol=1e-6, rtol=1e-6)
    masked = visual_dependency(logp_perturbed, logp_old, torch.tensor([[True, True, False, False]]))
    assert masked[0, 2:].tolist() == [0.0, 0.0]


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 30.0))
def test_visual_dependency_matches_loop_and_bounds(seed, scale):
    generator = torch.Generator().manual_seed(seed)
    logp_old = -scale * torch.rand(3, 5, generator=generator, dtype=torch.float64)
    logp_perturbed = -scale * torch.rand(3, 5, generator=generator, dtype=torch.float64)
    mask = torch.rand(3, 5, generator=generator) < 0.8
    got = visual_dependency(logp_perturbed, logp_old, mask)
    torch.testing.assert_close(got, k3_loop(logp_old, logp_perturbed, mask))
    assert bool((got >= 0).all()) and bool((got <= 10).all())
    assert float(visual_dependency(logp_old, logp_old, mask).abs().max()) == 0.0


def test_visual_dependency_score_writes_extras():
    batch = make_batch([2, 2], [3, 1, 2, 3], seed=3)
    term = visual_dependency_score()
    out = Objective(group_zscore() >> term >> clip_ratio())(**batch)
    expected = visual_dependency(batch["extras"]["logp_perturbed"], batch["logp_old"], batch["mask"])
    torch.testing.assert_close(out.state.extras["visual_dependency"], expected)
    assert term.stage == "batch" and "extras:visual_dependency" in term.slots_written()


def test_visual_dependency_bad_input():
    # the type checker (on in tests) or the function's own check names the argument
    with pytest.raises((RlobjInputError, TypeCheckError), match="logp_old"):
        visual_dependency(torch.zeros(2, 3), torch.zeros(2, 4))
    batch = make_batch([2], [2, 2])
    del batch["extras"]["logp_perturbed"]
    with pytest.raises(RlobjInputError, match=r"extras\['logp_perturbed'\].*perception_forward"):
        Objective(group_zscore() >> visual_dependency_score() >> clip_ratio())(**batch)


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
# PAPO double entropy
# ------------------------------------------------------------------------------------------


def test_double_entropy_hand_values_and_gradient():
    logp = torch.tensor([[-1.0, -3.0]], requires_grad=True)
    logp_perturbed = torch.tensor([[-2.0, -2.0]])
    out = run(double_entropy(eta_orig=0.05, eta_perturbed=0.03), logp, torch.ones(1, 2, dtype=torch.bool),
              logp_perturbed=logp_perturbed)
    torch.testing.assert_close(out.loss, torch.tensor(0.05 * 2.0 + 0.03 * 2.0))
    out.loss.backward()
    # minimising eta1 * (-logp) raises the sampled tokens' log-probs: gradient -eta1 / tokens
    torch.testing.assert_close(logp.grad, torch.full((1, 2), -0.05 / 2))
    torch.testing.assert_close(out.metrics["perception/entropy_orig"], torch.tensor(2.0))


def test_double_entropy_perturbed_part_is_a_constant_when_detached():
    f = fields(2, 3, 5)
    logp = f["logp"].clone().requires_grad_(True)
    only_perturbed = run(double_entropy(eta_orig=0.0, eta_perturbed=0.5), logp, f["mask"],
                         logp_perturbed=f["logp_perturbed"].clone().requires_grad_(True))
    only_perturbed.loss.backward()
    assert logp.grad is None or float(logp.grad.abs().max()) == 0.0
    zero = run(double_entropy(0.0, 0.0), f["logp"], f["mask"], logp_perturbed=f["logp_perturbed"])
    assert float(zero.loss) == 0.0


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), eta1=st.floats(0, 1), eta2=st.floats(0, 1))
def test_double_entropy_matches_loop(seed, eta1, eta2):
    f = fields(3, 4, seed)
    out = run(double_entropy(eta1, eta2), f["logp"].double(), f["mask"], logp_perturbed=f["logp_perturbed"].double())
    total, count = 0.0, 0
    for i in range(3):
        for t in range(4):
            if f["mask"][i, t]:
                total += -eta1 * float(f["logp"][i, t]) - eta2 * float(f["logp_perturbed"][i, t])
                count += 1
    assert abs(float(out.loss) - total / count) < 1e-6


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


def vogue_run(term, f, advantages, noisy, entropy=None):
    fields_ = dict(logp=f["logp"], mask=f["mask"], advantages=advantages,
                   vocab=VocabView.from_logits(f["logits"]),
                   extras={"vocab_perturbed": VocabView.from_logits(f["logits_perturbed"]), "noisy_branch": noisy})
    if entropy is not None:
        fields_["entropy"] = entropy
    return term(_state(**fields_))


def _state(**fields_):
    from rlobj.algebra.state import State

    return State.from_batch(**fields_)


def vogue_loop(f, advantages, noisy, lambda_u, cap, lambda_h=0.0, kappa=2.0, entropy=None):
    u = sym_kl_loop(f["logits"], f["logits_perturbed"], f["mask"])
    out = advantages.double().clone()
    for i in range(u.shape[0]):
        valid = [t for t in range(u.shape[1]) if f["mask"][i, t]]
        mean_u = sum(float(u[i, t]) for t in valid) / max(len(valid), 1)
        for t in valid:
            if noisy[i]:
                a = abs(float(advantages[i, t]))
                bonus = min(lambda_u * mean_u, cap * a)
                if lambda_h > 0:
                    bonus += min(lambda_h * float(entropy[i, t]), a / kappa)
                out[i, t] += bonus
    return torch.where(f["mask"], out, torch.zeros((), dtype=torch.float64))


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), lambda_u=st.floats(0, 5), cap=st.floats(0, 0.99),
       lambda_h=st.sampled_from([0.0, 0.3]))
def test_vogue_bonus_matches_loop_and_keeps_signs(seed, lambda_u, cap, lambda_h):
    f = fields(4, 3, seed)
    generator = torch.Generator().manual_seed(seed)
    advantages = torch.randn(4, 1, generator=generator).expand(4, 3).clone()
    advantages[0] = 0.0
    noisy = torch.tensor([True, True, False, True])
    entropy = torch.rand(4, 3, generator=generator)
    kappa = 4.0
    term = vogue_bonus(lambda_u=lambda_u, cap=cap, lambda_h=lambda_h, kappa=kappa)
    state = vogue_run(term, f, advantages, noisy, entropy=entropy)
    expected = vogue_loop(f, advantages, noisy, lambda_u, cap, lambda_h, kappa, entropy)
    torch.testing.assert_close(state.advantages.double(), expected, atol=1e-5, rtol=1e-5)
    bonus = (state.advantages - torch.where(f["mask"], advantages, 0.0))[f["mask"]]
    assert bool((bonus >= -1e-7).all())
    assert float(state.advantages[0].abs().max()) == 0.0  # A = 0 gets no bonus
    assert float(state.advantages[2].sub(advantages[2]).abs().max()) == 0.0  # not a noisy row
    if cap + (1 / kappa if lambda_h > 0 else 0.0) < 1:  # the documented bound on the bonus
        signs_kept = torch.sign(state.advantages[f["mask"]]) == torch.sign(advantages[f["mask"]])
        assert bool(signs_kept.all())


def test_vogue_bonus_hand_value_and_monotone_in_uncertainty():
    f = fields(1, 2, 0)
    f["mask"] = torch.ones(1, 2, dtype=torch.bool)
    f["logits"] = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    f["logits_perturbed"] = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0]]])
    f["logp"] = torch.log(torch.full((1, 2), 0.5))
    u0 = 0.5 * ((0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)) + (0.75 * math.log(1.5) + 0.25 * math.log(0.5)))
    advantages = torch.tensor([[1.0, 1.0]])
    state = vogue_run(vogue_bonus(lambda_u=1.0, cap=10.0), f, advantages, torch.tensor([True]))
    torch.testing.assert_close(state.advantages, torch.tensor([[1.0, 1.0]]) + u0 / 2)
    capped = vogue_run(vogue_bonus(lambda_u=100.0, cap=0.25), f, advantages, torch.tensor([True]))
    torch.testing.assert_close(capped.advantages, torch.tensor([[1.25, 1.25]]))
    stronger = dict(f, logits_perturbed=torch.tensor([[[math.log(9.0), 0.0], [0.0, 0.0]]]))
    more = vogue_run(vogue_bonus(lambda_u=1.0, cap=10.0), stronger, advantages, torch.tensor([True]))
    assert float(more.advantages[0, 0]) > float(state.advantages[0, 0])


def test_vogue_bonus_off_is_plain_advantage():
    batch = make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=5, vocab=True)
    plain = Objective(group_zscore() >> clip_ratio() >> token_mean())(**batch)
    noisy_none = dict(batch, extras={**batch["extras"], "noisy_branch": torch.zeros(8, dtype=torch.bool)})
    for term, extras_batch in ((vogue_bonus(lambda_u=0.0), batch), (vogue_bonus(), noisy_none)):
        out = Objective(group_zscore() >> term >> clip_ratio() >> token_mean())(**extras_batch)
        torch.testing.assert_close(out.state.advantages, plain.state.advantages)


def test_vogue_bonus_bad_input():
    with pytest.raises(RlobjInputError, match="vogue_bonus.rows"):
        vogue_bonus(rows="some")
    with pytest.raises(RlobjInputError, match="vogue_bonus.kappa"):
        vogue_bonus(kappa=0.0)
    with pytest.raises(RlobjInputError, match="vogue_bonus.lambda_u"):
        vogue_bonus(lambda_u=-1.0)
    f = fields(2, 3)
    with pytest.raises(RlobjInputError, match=r"extras\['noisy_branch'\]: expected a bool"):
        vogue_run(vogue_bonus(), f, torch.ones(2, 3), torch.ones(2))
    with pytest.raises(RlobjInputError, match=r"extras\['noisy_branch'\]"):
        vogue_run(vogue_bonus(), f, torch.ones(2, 3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(RlobjInputError, match="reads 'advantages'"):
        vogue_run(vogue_bonus(), f, None, torch.ones(2, dtype=torch.bool))
    with pytest.raises(RlobjInputError, match="symmetric_kl: expected two VocabViews"):
        symmetric_kl(VocabView.from_logits(f["logits"]), f["logits"])
