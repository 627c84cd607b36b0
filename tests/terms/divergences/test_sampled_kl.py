"""Sampled-token divergences (rlobj/terms/divergences/sampled_kl.py): the test layers of DESIGN.md
s.7.

Hand values of k1/k2/k3/abs, a plain-loop reference with verl's clamps on Hypothesis inputs,
gradients (gradcheck in float64, analytic k3 and straight-through gradients), the estimator
properties of Schulman's note (k3 >= 0, Monte-Carlo convergence to KL(p||q), k1 antisymmetric,
k2 symmetric), placement in the loss or the reward, the double-placement refusal, bad input.
"""

import math

import pytest
import torch
from batches import F64, padded_start, t
from hypothesis import given
from hypothesis import strategies as st

from rlobj.ops.errors import RlobjBuildError, RlobjInputError
from rlobj.terms.advantages import group_mean_baseline
from rlobj.terms.divergences import abs_kl, k1_kl, k2_kl, k3_kl, kl_estimate, kl_penalty
from rlobj.terms.surrogates import clip_ratio, reinforce

ESTIMATORS = ("k1", "k2", "k3", "abs")



@st.composite
def batches(draw):
    """float64 logp / logp_ref with padding (garbage behind it); far pairs hit verl's clamps."""
    spread = draw(st.sampled_from([0.1, 2.0, 30.0]))
    g, mask = padded_start(draw, 4, 6)
    b, n = mask.shape
    logp = -torch.rand(b, n, generator=g, dtype=F64) * 3 - 1e-3
    logp_ref = torch.clamp(logp + (torch.rand(b, n, generator=g, dtype=F64) * 2 - 1) * spread, max=-1e-3)
    logp = torch.where(mask, logp, torch.full_like(logp, 5.0))
    logp_ref = torch.where(mask, logp_ref, torch.full_like(logp_ref, float("nan")))
    return {"logp": logp, "logp_ref": logp_ref, "mask": mask}


def ref_estimate(lp, lr, estimator):
    """Schulman's estimators with d = log q - log p clamped to [-20, 20], k3 clamped to [-10, 10]."""
    d = min(max(lr - lp, -20.0), 20.0)
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return min(max(math.exp(d) - d - 1.0, -10.0), 10.0)
    return abs(d)


def ref_grad(lp, lr, estimator, straight_through=False):
    """d(estimate)/d(logp), 0 where a clamp is active."""
    raw = lr - lp
    if abs(raw) > 20.0:
        return 0.0
    d = raw
    if straight_through or estimator == "k2":
        return -d
    if estimator == "k1":
        return 1.0
    if estimator == "k3":
        return 0.0 if math.exp(d) - d - 1.0 > 10.0 else 1.0 - math.exp(d)
    return -math.copysign(1.0, d)


# --------------------------------------------------------------------------- hand values
def test_hand_values_of_each_estimator():
    # p = 0.5, q = 0.25: d = log(q/p) = -log 2 = -0.693147
    # k1 = -d = 0.693147; k2 = d^2/2 = 0.240227; k3 = e^d - d - 1 = 0.5 + 0.693147 - 1 = 0.193147
    # abs = 0.693147.  Second token p = q: all 0.  beta = 0.5, token mean over 2 tokens.
    logp = torch.log(t([[0.5, 0.3, 0.9]]))
    logp_ref = torch.log(t([[0.25, 0.3, 0.1]]))
    mask = t([[1, 1, 0]]).bool()
    expected = {"k1": 0.6931471806, "k2": 0.2402265070, "k3": 0.1931471806, "abs": 0.6931471806}
    for estimator, value in expected.items():
        out = kl_penalty(beta=0.5, estimator=estimator).loss(logp=logp, logp_ref=logp_ref, mask=mask)
        part = out.state.parts["kl_ref"]
        assert part.values[0].tolist() == pytest.approx([0.5 * value, 0.0, 0.0], abs=1e-10)
        assert float(out.loss.detach()) == pytest.approx(0.5 * value / 2)
        assert float(out.metrics[f"kl/ref_{estimator}"]) == pytest.approx(value / 2)
        assert list(out.state.parts) == ["kl_ref"]


def test_factories_pick_their_estimator():
    for factory, name in ((k1_kl, "k1"), (k2_kl, "k2"), (k3_kl, "k3"), (abs_kl, "abs")):
        term = factory(beta=0.04, placement="reward")
        assert (term.estimator, term.beta, term.placement) == (name, 0.04, "reward")
    assert kl_penalty().estimator == "k3" and kl_penalty().beta == 0.001


def test_golden_verl_clamps():
    # log-ratio clamped to [-20, 20]: logp = 0, ref = -30 -> d = -20: k1 = 20, k2 = 200, abs = 20
    # k3 value clamped to 10: logp = -15, ref = 0 -> d = 15: e^15 - 16 = 3.27e6 -> 10
    logp, ref = t([[0.0, -15.0]]), t([[-30.0, 0.0]])
    assert kl_estimate(logp, ref, "k1")[0, 0].item() == 20.0
    assert kl_estimate(logp, ref, "k2")[0, 0].item() == 200.0
    assert kl_estimate(logp, ref, "abs")[0, 0].item() == 20.0
    assert kl_estimate(logp, ref, "k3")[0, 1].item() == 10.0
    # d = -20: e^-20 + 20 - 1 = 19.000000002 -> also clamped to 10
    assert kl_estimate(logp, ref, "k3")[0, 0].item() == 10.0
    # GRPO's coefficient 0.04 with k3 on a clamped token: 0.4
    out = k3_kl(beta=0.04).loss(logp=t([[-15.0]]), logp_ref=t([[0.0]]), mask=torch.ones(1, 1, dtype=torch.bool))
    assert float(out.loss.detach()) == pytest.approx(0.4)


# --------------------------------------------------------------------------- loop reference
@given(batches(), st.sampled_from(ESTIMATORS), st.booleans(), st.sampled_from([0.001, 0.04, 1.0]))
def test_matches_loop_reference_values_and_gradients(batch, estimator, straight_through, beta):
    logp = batch["logp"].clone().requires_grad_()
    out = kl_penalty(beta=beta, estimator=estimator, straight_through=straight_through).loss(
        logp=logp, logp_ref=batch["logp_ref"], mask=batch["mask"])
    values = out.state.parts["kl_ref"].values.detach()
    mask, lp, lr = batch["mask"].tolist(), batch["logp"].tolist(), batch["logp_ref"].tolist()
    count = sum(map(sum, mask))
    total = 0.0
    out.loss.backward()
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if not m:
                assert float(values[i, j]) == 0.0 and float(logp.grad[i, j]) == 0.0
                continue
            k = ref_estimate(lp[i][j], lr[i][j], estimator)  # straight-through keeps the value
            total += k
            assert float(values[i, j]) == pytest.approx(beta * k, rel=1e-10, abs=1e-14)
            grad = beta * ref_grad(lp[i][j], lr[i][j], estimator, straight_through) / count
            assert float(logp.grad[i, j]) == pytest.approx(grad, rel=1e-8, abs=1e-14)
    assert float(out.loss.detach()) == pytest.approx(beta * total / count, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "abs"])
@pytest.mark.parametrize("straight_through", [False, True])
def test_gradcheck(estimator, straight_through):
    logp = t([[-0.5, -1.2, -2.0], [-0.1, -3.0, -0.7]]).requires_grad_()
    logp_ref = t([[-0.9, -0.2, -2.5], [-1.0, -0.4, -0.6]])  # |d| > 0 (abs is smooth there)
    mask = t([[1, 1, 1], [1, 1, 0]]).bool()

    def f(lp):
        return kl_penalty(beta=0.1, estimator=estimator, straight_through=straight_through).loss(
            logp=lp, logp_ref=logp_ref, mask=mask).loss

    if not straight_through:
        assert torch.autograd.gradcheck(f, (logp,))
    else:
        # value of the estimator, gradient of k2: 0.1 * (logp - logp_ref) / 5 at valid tokens
        f(logp).backward()
        expected = torch.where(mask, 0.1 * (logp.detach() - logp_ref) / 5, 0.0)
        torch.testing.assert_close(logp.grad, expected)
        k2 = kl_penalty(beta=0.1, estimator="k2").loss(logp=logp, logp_ref=logp_ref, mask=mask)
        grad_k2 = torch.autograd.grad(k2.loss, logp)[0]
        torch.testing.assert_close(logp.grad, grad_k2)
        plain = kl_penalty(beta=0.1, estimator=estimator).loss(logp=logp, logp_ref=logp_ref, mask=mask)
        torch.testing.assert_close(f(logp), plain.loss)


def test_k3_gradient_sign():
    # dk3/dlogp = 1 - q/p: pushes logp up where q > p, down where q < p
    logp = torch.log(t([[0.2, 0.6]])).requires_grad_()
    k = kl_estimate(logp, torch.log(t([[0.5, 0.3]])), "k3").sum()
    k.backward()
    assert logp.grad.tolist()[0] == pytest.approx([1 - 0.5 / 0.2, 1 - 0.3 / 0.6])


# --------------------------------------------------------------------------- properties
@given(st.lists(st.tuples(st.floats(-25, 0), st.floats(-25, 0)), min_size=1, max_size=20))
def test_estimator_symmetries_and_k3_nonnegative(pairs):
    a = t([[p for p, _ in pairs]])
    b = t([[q for _, q in pairs]])
    k3 = kl_estimate(a, b, "k3")
    assert bool((k3 >= 0).all())
    assert bool((k3[(a - b).abs() > 1e-6] > 0).all())
    assert bool((kl_estimate(a, a, "k3") == 0).all())
    torch.testing.assert_close(kl_estimate(a, b, "k1"), -kl_estimate(b, a, "k1"))
    torch.testing.assert_close(kl_estimate(a, b, "k2"), kl_estimate(b, a, "k2"))
    torch.testing.assert_close(kl_estimate(a, b, "abs"), kl_estimate(b, a, "abs"))
    assert bool((kl_estimate(a, b, "k2") >= 0).all()) and bool((kl_estimate(a, b, "abs") >= 0).all())


@given(st.floats(-5, -1e-3), st.floats(1e-6, 5))
def test_k3_zero_iff_equal(logp, gap):
    assert float(kl_estimate(t([[logp]]), t([[logp]]), "k3")) == 0.0
    for ref in (logp - gap, min(logp + gap, 0.0)):
        if ref != logp:
            assert float(kl_estimate(t([[logp]]), t([[ref]]), "k3")) > 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, F64])
def test_k3_nonnegative_and_positive_for_small_gaps_in_low_precision(dtype):
    # exp(d) - d - 1 cancels in float32: d = 3e-8 gave -5.96e-8 (negative) and d = 1e-5 gave 0
    logp = torch.full((1, 4), -1.0, dtype=dtype)
    gaps = t([[3e-8, -3e-8, 1e-5, -1e-5]], dtype)
    k3 = kl_estimate(logp, logp + gaps, "k3")
    assert bool((k3 >= 0).all())
    if dtype != torch.bfloat16:  # bf16 cannot represent -1 + 1e-5
        assert bool((k3[0, 2:] > 0).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monte_carlo_k3_and_k1_converge_to_kl(seed):
    # sampled-token estimates with x ~ p: E[k3] = E[k1] = KL(p || q) on a small categorical
    g = torch.Generator().manual_seed(seed)
    # mild logits: every log q/p stays far from the k3 clamp at 10 (which would bias the mean)
    p = torch.softmax(0.7 * torch.randn(5, generator=g, dtype=F64), 0)
    q = torch.softmax(0.7 * torch.randn(5, generator=g, dtype=F64), 0)
    d = q.log() - p.log()
    assert float((d.exp() - d - 1).max()) < 10.0
    exact = float((p * (p.log() - q.log())).sum())
    n = 200_000
    x = torch.multinomial(p, n, replacement=True, generator=g)
    logp, logq = p.log()[x][None], q.log()[x][None]
    for estimator in ("k3", "k1"):
        samples = kl_estimate(logp, logq, estimator)
        tol = 5 * float(samples.std()) / math.sqrt(n)
        assert float(samples.mean()) == pytest.approx(exact, abs=tol)
    # through the term: beta = 1, token mean over the samples
    out = k3_kl(beta=1.0).loss(logp=logp, logp_ref=logq, mask=torch.ones_like(logp, dtype=torch.bool))
    assert float(out.loss.detach()) == pytest.approx(exact, abs=5 * float(kl_estimate(logp, logq).std()) / math.sqrt(n))


# --------------------------------------------------------------------------- placement
def placement_batch():
    logp_old = torch.log(t([[0.5, 0.4], [0.3, 0.2], [0.6, 0.9], [0.1, 0.5]]))
    return {"logp": (logp_old + 0.05).clamp(max=-1e-3).requires_grad_(), "logp_old": logp_old,
            "logp_ref": torch.log(t([[0.25, 0.4], [0.3, 0.4], [0.5, 0.9], [0.2, 0.2]])),
            "mask": t([[1, 1], [1, 0], [1, 1], [1, 1]]).bool(),
            "rewards": t([1.0, 0.0, 1.0, 1.0]), "group_ids": torch.tensor([0, 0, 1, 1])}


def test_reward_placement_changes_token_rewards_before_advantages():
    beta = 0.1
    kw = placement_batch()
    term = kl_penalty(beta=beta, estimator="k1", placement="reward")
    assert term.stage == "batch"
    out = (term >> group_mean_baseline() >> reinforce()).loss(**kw)
    # k1 from logp_old (the sampling policy), detached: token_rewards = -beta*(logp_old - logp_ref)
    expected_tr = torch.where(kw["mask"], -beta * (kw["logp_old"] - kw["logp_ref"]), 0.0)
    torch.testing.assert_close(out.state.token_rewards, expected_tr)
    assert list(out.state.parts) == ["policy"]  # no loss part
    # advantages see r_i + sum_t token_rewards: group mean baseline of the shaped rewards
    shaped = kw["rewards"] + expected_tr.sum(-1)
    base = torch.stack([shaped[:2].mean()] * 2 + [shaped[2:].mean()] * 2)
    torch.testing.assert_close(out.state.advantages, torch.where(kw["mask"], (shaped - base)[:, None], 0.0))
    # same loss and gradient as handing the shaped token rewards in directly: the KL has no gradient
    out.loss.backward()
    grad = kw["logp"].grad.clone()
    kw2 = placement_batch()
    direct = (group_mean_baseline() >> reinforce()).loss(**{k: v for k, v in kw2.items() if k != "logp_ref"},
                                                          token_rewards=expected_tr)
    direct.loss.backward()
    torch.testing.assert_close(out.loss, direct.loss)
    torch.testing.assert_close(grad, kw2["logp"].grad)


def test_reward_placement_adds_to_existing_token_rewards_and_falls_back_to_logp():
    kw = placement_batch()
    del kw["logp_old"]
    token_rewards = torch.full((4, 2), 0.5, dtype=F64)
    term = kl_penalty(beta=1.0, estimator="k2", placement="reward")
    prepared = (term >> group_mean_baseline() >> reinforce()).loss(**kw, token_rewards=token_rewards).state
    d = kw["logp_ref"] - kw["logp"].detach()
    torch.testing.assert_close(prepared.token_rewards, torch.where(kw["mask"], 0.5 - 0.5 * d**2, 0.0))


def test_loss_placement_adds_part_named_after_target():
    kw = placement_batch()
    out = (group_mean_baseline() >> clip_ratio() >> k3_kl(beta=0.04)).loss(**kw)
    assert set(out.state.parts) == {"policy", "kl_ref"}
    assert out.state.token_rewards is None
    assert float(out.loss.detach()) == pytest.approx(float(out.metrics["loss/policy"] + out.metrics["loss/kl_ref"]))
    init = {"logp_init": kw["logp_ref"].clone()}
    out = (group_mean_baseline() >> clip_ratio() >> k3_kl(beta=0.04, against="init")).loss(
        **{k: v for k, v in kw.items() if k != "logp_ref"}, extras=init)
    assert set(out.state.parts) == {"policy", "kl_init"}
    assert "kl/init_k3" in out.metrics


def test_reward_and_loss_against_the_same_policy_is_refused_unless_allowed():
    with pytest.raises(RlobjBuildError, match="allow_reward_and_loss"):
        k1_kl(placement="reward") >> group_mean_baseline() >> clip_ratio() >> k3_kl()
    chain = k1_kl(placement="reward") >> group_mean_baseline() >> clip_ratio() >> k3_kl(allow_reward_and_loss=True)
    out = chain.loss(**placement_batch())
    assert set(out.state.parts) == {"policy", "kl_ref"} and out.state.token_rewards is not None
    k1_kl(placement="reward", allow_reward_and_loss=True) >> group_mean_baseline() >> clip_ratio() >> k3_kl()
    # different targets are fine
    k1_kl(placement="reward", against="init") >> group_mean_baseline() >> clip_ratio() >> k3_kl()


def test_reward_placement_after_the_advantage_term_is_refused():
    with pytest.raises(RlobjBuildError, match="token_rewards"):
        group_mean_baseline() >> k1_kl(placement="reward") >> reinforce()


# --------------------------------------------------------------------------- bad input
def test_missing_reference_names_the_field():
    kw = {"logp": t([[-0.5]]), "mask": torch.ones(1, 1, dtype=torch.bool)}
    with pytest.raises(RlobjInputError, match=r"kl_penalty reads 'logp_ref'"):
        k3_kl().loss(**kw)
    with pytest.raises(RlobjInputError, match=r"kl_penalty reads 'extras:logp_init'"):
        k3_kl(against="init").loss(**kw)
    with pytest.raises(RlobjInputError, match=r"logp_init.*\(1, 1\).*\(1, 2\)"):
        k3_kl(against="init").loss(**kw, extras={"logp_init": t([[-0.5, -0.1]])})


@pytest.mark.parametrize("build, match", [
    (lambda: kl_penalty(beta=-0.1), "kl_penalty.beta"),
    (lambda: kl_penalty(estimator="k4"), "kl_penalty.estimator"),
    (lambda: kl_penalty(against="old"), "kl_penalty.against"),
    (lambda: kl_penalty(placement="advantage"), "kl_penalty.placement"),
    (lambda: kl_estimate(t([[-1.0]]), t([[-1.0]]), "low_var_kl"), "kl estimator"),
])
def test_invalid_hyperparameters(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


def test_clamp_option_matches_verl_when_on_and_trl_when_off():
    import rlobj

    # d = log q - log p = 12: verl clamps k3 at 10, TRL keeps exp(12) - 12 - 1
    logp = torch.tensor([[-13.0]])
    logp_ref = torch.tensor([[-1.0]])
    fields = dict(logp=logp, logp_ref=logp_ref, mask=torch.ones(1, 1, dtype=torch.bool))
    verl = rlobj.k3_kl(1.0).loss(**fields).loss
    trl = rlobj.k3_kl(1.0, clamp=False).loss(**fields).loss
    assert float(verl) == pytest.approx(10.0)
    assert float(trl) == pytest.approx(math.exp(12.0) - 13.0, rel=1e-5)
