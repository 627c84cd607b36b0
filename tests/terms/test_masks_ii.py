"""Seed methods II, token masks and clip variants: the test layers of DESIGN.md s.7.

mastered_positive_mask (UloRL DMMPT, arXiv 2507.19766), clip_cov / kl_cov (Cui et al., arXiv
2505.22617, as verl implements them) and the one_shot_rlvr preset (arXiv 2504.20571): hand
values with the arithmetic in comments, plain-loop references on Hypothesis inputs, gradients
(exactly zero on masked / detached tokens), properties from the math (monotone masks, the mask
switched off gives the base loss, the entropy bonus raises entropy), bad input, and composition
with grpo / dr_grpo / dapo.
"""

import itertools
import math

import pytest
import torch
from batches import F64, padded_start, presets, t
from hypothesis import given
from hypothesis import strategies as st

from rlobj import (
    Objective,
    clip_cov,
    clip_ratio,
    entropy_bonus,
    group_zscore,
    grpo,
    k3_kl,
    kl_cov,
    mastered_positive_mask,
    one_shot_rlvr,
    reinforce,
    token_mean,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.surrogates import token_covariance


@st.composite
def batches(draw):
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


def kw(batch, grad=False):
    out = dict(batch)
    out["logp"] = batch["logp"].clone().requires_grad_(grad)
    return out


def valid(batch):
    mask = batch["mask"].tolist()
    return [(i, j) for i, row in enumerate(mask) for j, m in enumerate(row) if m]


# =========================================================================== mastered_positive_mask
HAND = {
    # row 0: reward 1, p = e^-0.005 = 0.995, e^-0.7 = 0.497, e^-0.001 = 0.999; mean H = (0.1+0.3+0.05)/3 = 0.15 < 0.2
    # row 1: reward 1, p = 0.998, 0.741;  mean H = (0.1+0.5)/2 = 0.3 >= 0.2 -> gate closed
    # row 2: reward 0 -> never masked
    "logp": t([[-0.005, -0.7, -0.001], [-0.002, -0.3, 0.0], [-0.001, -0.004, -2.0]]),
    "logp_old": t([[-0.005, -0.7, -0.001], [-0.002, -0.3, 0.0], [-0.001, -0.004, -2.0]]),
    "mask": t([[1, 1, 1], [1, 1, 0], [1, 1, 1]]).bool(),
    "advantages": t([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]]),
    "entropy": t([[0.1, 0.3, 0.05], [0.1, 0.5, 0.0], [0.0, 0.0, 0.0]]),
    "rewards": t([1.0, 1.0, 0.0]),
}


def test_mastered_positive_mask_hand_values():
    # reinforce per token -A*logp: [0.005, 0.7, 0.001 | 0.002, 0.3 | -0.001, -0.004, -2.0], N = 8
    # masked: row 0 tokens 0 and 2 (p >= 0.99, gate open) -> numerator 0.7 + 0.002 + 0.3 - 0.001 - 0.004 - 2.0
    #       = -1.003, denominator unchanged = 8 -> -0.125375
    out = (reinforce() >> mastered_positive_mask() >> token_mean()).loss(**HAND)
    assert out.state.parts["policy"].mask.tolist() == [[False, True, False], [True, True, False], [True, True, True]]
    assert float(out.loss) == pytest.approx(-1.003 / 8, abs=1e-12)
    assert float(out.metrics["mask/mastered_frac"]) == pytest.approx(2 / 8)
    assert float(out.metrics["mask/mastered_gate_frac"]) == pytest.approx(1 / 2)  # 1 of 2 positive responses
    base = (reinforce() >> token_mean()).loss(**HAND)
    assert float(base.loss) == pytest.approx(-0.997 / 8, abs=1e-12)  # all 8 tokens: -1.003 + 0.005 + 0.001
    # batch gate: mean H over all 8 tokens = 1.05 / 8 = 0.13125 < 0.2 -> row 1 token 0 (p 0.998) also masked
    batch = (reinforce() >> mastered_positive_mask(gate_scope="batch") >> token_mean()).loss(**HAND)
    assert float(batch.loss) == pytest.approx((-1.003 - 0.002) / 8, abs=1e-12)
    # the always-on variant (sigma = inf) masks row 1 token 0 too; tau = 0.999 keeps only p >= 0.999 (row 0 token 2)
    assert float((reinforce() >> mastered_positive_mask(sigma=math.inf) >> token_mean()).loss(**HAND).loss) == \
        pytest.approx((-1.003 - 0.002) / 8, abs=1e-12)
    strict = (reinforce() >> mastered_positive_mask(tau=0.999) >> token_mean()).loss(**HAND)
    assert float(strict.loss) == pytest.approx((-0.997 - 0.001) / 8, abs=1e-12)


def test_mastered_positive_mask_reads_the_current_policy_when_asked():
    # current policy: row 0 token 0 drops to p = e^-0.5 = 0.61 -> only token 2 is masked
    fields = dict(HAND, logp=t([[-0.5, -0.7, -0.001], [-0.002, -0.3, 0.0], [-0.001, -0.004, -2.0]]))
    out = (reinforce() >> mastered_positive_mask(prob_source="current")).loss(**fields)
    assert out.state.parts["policy"].mask[0].tolist() == [True, True, False]
    assert "logp_old" not in mastered_positive_mask(prob_source="current").slots_read()
    old = (reinforce() >> mastered_positive_mask()).loss(**fields)
    assert old.state.parts["policy"].mask[0].tolist() == [False, True, False]


def ref_mastered(batch, tau, sigma, scope="sequence"):
    """Plain loops: the set of masked (i, j)."""
    mask, ent, lp, r = (batch["mask"].tolist(), batch["entropy"].tolist(), batch["logp_old"].tolist(),
                        batch["rewards"].tolist())
    if scope == "sequence":
        means = [sum(e for e, m in zip(er, mr) if m) / max(1, sum(mr)) for er, mr in zip(ent, mask)]
    else:
        pairs = valid(batch)
        means = [sum(ent[i][j] for i, j in pairs) / len(pairs)] * len(mask)
    return {(i, j) for i, j in valid(batch) if r[i] >= 1.0 and means[i] < sigma and math.exp(lp[i][j]) >= tau}


@given(batches(), st.sampled_from([0.95, 0.99, 0.999]), st.sampled_from([0.1, 0.2, 0.3]),
       st.sampled_from(["sequence", "batch"]))
def test_mastered_positive_mask_matches_loop_reference_and_gradient(batch, tau, sigma, scope):
    fields = kw(batch, grad=True)
    out = (reinforce() >> mastered_positive_mask(tau=tau, sigma=sigma, gate_scope=scope) >> token_mean()).loss(**fields)
    masked = ref_mastered(batch, tau, sigma, scope)
    pairs = valid(batch)
    adv, lp = batch["advantages"].tolist(), batch["logp"].tolist()
    total = sum(-adv[i][j] * lp[i][j] for i, j in pairs if (i, j) not in masked)
    assert float(out.loss.detach()) == pytest.approx(total / len(pairs), rel=1e-12, abs=1e-14)
    out.loss.backward()
    for i, j in pairs:
        expected = 0.0 if (i, j) in masked else -adv[i][j] / len(pairs)  # denominator: all N tokens
        assert float(fields["logp"].grad[i, j]) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert not bool(fields["logp"].grad[~batch["mask"]].any())


@given(batches())
def test_mastered_positive_mask_properties(batch):
    def masked(**options):
        out = (reinforce() >> mastered_positive_mask(**options)).loss(**kw(batch))
        return batch["mask"] & ~out.state.parts["policy"].mask

    base = masked(tau=0.99, sigma=0.2)
    # monotone: raising sigma or lowering tau gives a superset
    assert not bool((base & ~masked(tau=0.99, sigma=0.3)).any())
    assert not bool((base & ~masked(tau=0.98, sigma=0.2)).any())
    # never a token of a reward-0 response, never a token with p < tau
    assert not bool(base[batch["rewards"] < 1].any())
    assert not bool((base & (batch["logp_old"].nan_to_num(0.0).exp() < 0.99)).any())
    # switched off (tau > 1 or sigma = 0): exactly the base loss
    plain = (reinforce() >> token_mean()).loss(**kw(batch)).loss
    for options in ({"tau": 1.5}, {"sigma": 0.0}):
        off = (reinforce() >> mastered_positive_mask(**options) >> token_mean()).loss(**kw(batch)).loss
        assert float(off) == float(plain)


def test_mastered_positive_mask_bad_input():
    with pytest.raises(RlobjInputError, match=r"mastered_positive_mask.tau: expected > 0.0, got 0"):
        mastered_positive_mask(tau=0)
    with pytest.raises(RlobjInputError, match=r"mastered_positive_mask.sigma: expected >= 0.0, got -1"):
        mastered_positive_mask(sigma=-1)
    with pytest.raises(RlobjInputError, match=r"prob_source: expected one of \('old', 'current'\), got 'new'"):
        mastered_positive_mask(prob_source="new")
    with pytest.raises(RlobjInputError, match=r"gate_scope: expected one of \('sequence', 'batch'\), got 'group'"):
        mastered_positive_mask(gate_scope="group")
    no_rewards = {k: v for k, v in HAND.items() if k != "rewards"}
    with pytest.raises(RlobjInputError, match="mastered_positive_mask reads 'rewards'"):
        (reinforce() >> mastered_positive_mask()).loss(**no_rewards)
    with pytest.raises(RlobjInputError, match="mastered_positive_mask modifies the loss part 'policy'"):
        mastered_positive_mask().loss(**HAND)
    no_old = {k: v for k, v in HAND.items() if k != "logp_old"}
    with pytest.raises(RlobjInputError, match="mastered_positive_mask reads 'logp_old'"):
        (reinforce() >> mastered_positive_mask()).loss(**no_old)
    no_entropy = {k: v for k, v in HAND.items() if k != "entropy"}
    with pytest.raises(RlobjInputError, match="entropy"):
        (reinforce() >> mastered_positive_mask()).loss(**no_entropy)


# =========================================================================== clip_cov / kl_cov
# one row, A = [3, 2, -1, -4] (mean 0), logp = [-0.5, -1.5, -2.5, -3.5] (mean -2, centred 1.5, 0.5, -0.5, -1.5)
# Cov = A * centred logp = [4.5, 1.0, 0.5, 6.0]
COV = {"logp": t([[-0.5, -1.5, -2.5, -3.5]]), "mask": torch.ones(1, 4, dtype=torch.bool),
       "advantages": t([[3.0, 2.0, -1.0, -4.0]])}


def test_token_covariance_hand_values():
    got = token_covariance(COV["logp"], COV["advantages"], COV["mask"])
    assert got.tolist() == [[4.5, 1.0, 0.5, 6.0]]
    # padding is 0 and does not enter the means
    padded = token_covariance(t([[-0.5, -1.5, -2.5, -3.5, 9.0]]), t([[3.0, 2.0, -1.0, -4.0, 7.0]]),
                              t([[1, 1, 1, 1, 0]]).bool())
    assert padded.tolist() == [[4.5, 1.0, 0.5, 6.0, 0.0]]


def test_clip_cov_hand_values_and_gradient():
    # ratio 1 everywhere (logp_old = logp): no PPO clipping. Band (1, 5) strictly: only 4.5 (token 0);
    # count = max(1, int(0.25 * 4)) = 1 -> token 0 detached.
    # loss = (-A*1 on tokens 1..3) / 4 = (-2 + 1 + 4) / 4 = 0.75 ; grad = -A/4 = [0, -0.5, 0.25, 1.0]
    logp = COV["logp"].clone().requires_grad_(True)
    out = (clip_cov(eps_low=0.2, eps_high=0.2, ratio=0.25) >> token_mean()).loss(**dict(COV, logp=logp, logp_old=COV["logp"]))
    assert out.state.parts["policy"].mask.tolist() == [[False, True, True, True]]
    assert float(out.loss) == pytest.approx(0.75)
    out.loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([0.0, -0.5, 0.25, 1.0])
    assert float(out.metrics["clip_cov/frac"]) == pytest.approx(0.25)
    assert float(out.metrics["clip_cov/candidates_frac"]) == pytest.approx(0.25)
    # a token PPO already clipped is not a candidate: token 0 with ratio e^0.5 = 1.65 > 1.2 and A > 0
    # -> no candidates, nothing detached; loss = (-3 * 1.2 - 2 + 1 + 4) / 4 = -0.15
    old = COV["logp"] - t([[0.5, 0.0, 0.0, 0.0]])
    clipped = (clip_cov(eps_low=0.2, eps_high=0.2, ratio=0.25) >> token_mean()).loss(**dict(COV, logp_old=old))
    assert clipped.state.parts["policy"].mask.all()
    assert float(clipped.loss) == pytest.approx(-0.15)
    assert float(clipped.metrics["clip_frac"]) == pytest.approx(0.25)
    # wider band [0.4, 7]: candidates 0, 1, 2, 3; count = int(0.5 * 4) = 2 of them, at random
    wide = (clip_cov(eps_low=0.2, eps_high=0.2, ratio=0.5, cov_low=0.4, cov_high=7.0, seed=3)).loss(**dict(COV, logp_old=COV["logp"]))
    assert int((~wide.state.parts["policy"].mask).sum()) == 2


def test_clip_cov_draw_counter_is_term_state():
    # seed given: the draw depends on (seed, number of earlier calls), the counter is term state
    fields = dict(COV, logp_old=COV["logp"])
    term = clip_cov(eps_low=0.2, eps_high=0.2, ratio=0.25, cov_low=0.4, cov_high=7.0, seed=1)  # 4 candidates, 1 detached
    state, subsets = {}, set()
    for call in range(12):
        out = term.loss(**fields, term_state=state)
        state = out.term_state
        assert list(state.values()) == [call + 1]
        subsets.add(tuple(out.state.parts["policy"].mask[0].tolist()))
    assert len(subsets) > 1  # the counter moves the draw
    fresh = term.loss(**fields)
    assert fresh.state.parts["policy"].mask.tolist() == term.loss(**fields).state.parts["policy"].mask.tolist()
    # seed None: torch's global RNG, as verl
    torch.manual_seed(7)
    a = clip_cov(eps_low=0.2, eps_high=0.2, ratio=0.25, cov_low=0.4, cov_high=7.0, seed=None).loss(**fields)
    torch.manual_seed(7)
    b = clip_cov(eps_low=0.2, eps_high=0.2, ratio=0.25, cov_low=0.4, cov_high=7.0, seed=None).loss(**fields)
    assert a.state.parts["policy"].mask.tolist() == b.state.parts["policy"].mask.tolist()
    assert a.term_state == {}


def ref_band(batch, eps, low, high):
    """Plain loops: valid tokens not clipped by PPO whose covariance lies in (low, high)."""
    pairs = valid(batch)
    adv, lp, old = batch["advantages"].tolist(), batch["logp"].tolist(), batch["logp_old"].tolist()
    mean_a = sum(adv[i][j] for i, j in pairs) / len(pairs)
    mean_l = sum(lp[i][j] for i, j in pairs) / len(pairs)
    band = set()
    for i, j in pairs:
        ratio = math.exp(lp[i][j] - old[i][j])
        unclipped, clipped = -adv[i][j] * ratio, -adv[i][j] * min(max(ratio, 1 - eps), 1 + eps)
        cov = (adv[i][j] - mean_a) * (lp[i][j] - mean_l)
        if not clipped > unclipped and low < cov < high:
            band.add((i, j))
    return band


@given(batches(), st.sampled_from([0.05, 0.2, 0.5, 1.0]), st.integers(0, 1000))
def test_clip_cov_matches_loop_reference(batch, ratio, seed):
    fields = kw(batch, grad=True)
    term = clip_cov(eps_low=0.2, eps_high=0.2, ratio=ratio, cov_low=-0.5, cov_high=1.5, seed=seed)
    out = (term >> token_mean()).loss(**fields)
    detached = {(i, j) for i, j in valid(batch) if not bool(out.state.parts["policy"].mask[i, j])}
    band, pairs = ref_band(batch, 0.2, -0.5, 1.5), valid(batch)
    assert detached <= band
    assert len(detached) == min(len(band), max(1, int(ratio * len(pairs))))
    # same seed, same subset; loss = PPO loss of the others over all N tokens
    again = (term >> token_mean()).loss(**kw(batch))
    assert again.state.parts["policy"].mask.tolist() == out.state.parts["policy"].mask.tolist()
    adv, lp, old = batch["advantages"].tolist(), batch["logp"].tolist(), batch["logp_old"].tolist()
    total, grads = 0.0, {}
    for i, j in pairs:
        ratio_ij = math.exp(lp[i][j] - old[i][j])
        unclipped, clipped = -adv[i][j] * ratio_ij, -adv[i][j] * min(max(ratio_ij, 0.8), 1.2)
        if (i, j) not in detached:
            total += max(unclipped, clipped)
        grads[i, j] = 0.0 if (i, j) in detached or clipped > unclipped else -adv[i][j] * ratio_ij / len(pairs)
    assert float(out.loss.detach()) == pytest.approx(total / len(pairs), rel=1e-10, abs=1e-12)
    out.loss.backward()
    for (i, j), expected in grads.items():
        assert float(fields["logp"].grad[i, j]) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_kl_cov_hand_values_and_gradient():
    # Cov = [4.5, 1.0, 0.5, 6.0]; count = max(1, int(0.25 * 4)) = 1 -> token 3 (6.0) penalised.
    # logp_old = logp - [0.1, 0, 0, 0.2] -> ratio [e^0.1, 1, 1, e^0.2]
    # loss = (-3 e^0.1 - 2 + 1 + 4 e^0.2 + 1.0 * |0.2|) / 4
    logp = COV["logp"].clone().requires_grad_(True)
    old = COV["logp"] - t([[0.1, 0.0, 0.0, 0.2]])
    out = (kl_cov(ratio=0.25, beta=1.0) >> token_mean()).loss(**dict(COV, logp=logp, logp_old=old))
    expected = (-3 * math.exp(0.1) - 2 + 1 + 4 * math.exp(0.2) + 0.2) / 4
    assert float(out.loss) == pytest.approx(expected, rel=1e-12)
    out.loss.backward()
    # d/dlogp: -A * ratio, plus beta * sign(log ratio) on token 3: 4 e^0.2 + 1
    assert logp.grad[0].tolist() == pytest.approx([-3 * math.exp(0.1) / 4, -0.5, 0.25, (4 * math.exp(0.2) + 1) / 4])
    assert float(out.metrics["kl_cov/frac"]) == pytest.approx(0.25)
    assert float(out.metrics["kl_cov/abs_kl"]) == pytest.approx(0.3 / 4)
    # beta = 0: the unclipped ratio surrogate -A * rho
    plain = (kl_cov(ratio=0.25, beta=0.0) >> token_mean()).loss(**dict(COV, logp_old=old))
    assert float(plain.loss) == pytest.approx((-3 * math.exp(0.1) - 2 + 1 + 4 * math.exp(0.2)) / 4, rel=1e-12)


@given(batches(), st.sampled_from([0.01, 0.2, 0.5, 1.0]), st.sampled_from([0.1, 1.0]))
def test_kl_cov_matches_loop_reference(batch, ratio, beta):
    fields = kw(batch, grad=True)
    out = (kl_cov(ratio=ratio, beta=beta) >> token_mean()).loss(**fields)
    pairs = valid(batch)
    adv, lp, old = batch["advantages"].tolist(), batch["logp"].tolist(), batch["logp_old"].tolist()
    mean_a = sum(adv[i][j] for i, j in pairs) / len(pairs)
    mean_l = sum(lp[i][j] for i, j in pairs) / len(pairs)
    cov = {(i, j): (adv[i][j] - mean_a) * (lp[i][j] - mean_l) for i, j in pairs}
    count = max(1, int(ratio * len(pairs)))
    kth = sorted(cov.values(), reverse=True)[count - 1]
    # exact ties (two tokens always tie: their centred products are equal) may round either way:
    # every choice of the tied tokens is a valid top-k; the term's must be one of them
    sure = {p for p in pairs if cov[p] > kth + 1e-12}
    tied = [p for p in pairs if abs(cov[p] - kth) <= 1e-12]
    choices = [sure | set(extra) for extra in itertools.combinations(tied, count - len(sure))]

    def reference(chosen):
        total, grads = 0.0, {}
        for i, j in pairs:
            d = lp[i][j] - old[i][j]
            total += -adv[i][j] * math.exp(d) + (beta * abs(d) if (i, j) in chosen else 0.0)
            grads[i, j] = -adv[i][j] * math.exp(d) + (beta * math.copysign(1.0, d) if (i, j) in chosen and d != 0 else 0.0)
        return total / len(pairs), {p: g / len(pairs) for p, g in grads.items()}

    out.loss.backward()
    got = {p: float(fields["logp"].grad[p]) for p in pairs}
    matches = [reference(chosen) for chosen in choices]
    assert any(float(out.loss.detach()) == pytest.approx(value, rel=1e-10, abs=1e-12)
               and all(got[p] == pytest.approx(grads[p], rel=1e-10, abs=1e-12) for p in pairs)
               for value, grads in matches)


def test_clip_and_kl_cov_bad_input():
    with pytest.raises(RlobjInputError, match=r"clip_cov: expected cov_low < cov_high, got cov_low=5.0, cov_high=1.0"):
        clip_cov(cov_low=5.0, cov_high=1.0)
    with pytest.raises(RlobjInputError, match=r"clip_cov.ratio: expected > 0.0, got 0"):
        clip_cov(ratio=0)
    with pytest.raises(RlobjInputError, match=r"kl_cov.ratio: expected <= 1.0, got 1.5"):
        kl_cov(ratio=1.5)
    with pytest.raises(RlobjInputError, match=r"kl_cov.beta: expected >= 0.0, got -1"):
        kl_cov(beta=-1)
    with pytest.raises(RlobjInputError, match="clip_cov reads 'logp_old'"):
        clip_cov().loss(**COV)
    with pytest.raises(RlobjInputError, match="kl_cov reads 'advantages'"):
        kl_cov().loss(logp=COV["logp"], mask=COV["mask"], logp_old=COV["logp"])


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


# =========================================================================== composition
@presets()
def test_composition_with_presets(preset):
    from batches import leaf, make_batch

    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=5))
    base = Objective(preset)(**batch)
    # the mask switched off leaves the preset's loss unchanged; switched on it only removes tokens
    off = Objective(preset >> mastered_positive_mask(tau=1.5))(**batch)
    assert float(off.loss) == float(base.loss)
    on = Objective(preset >> mastered_positive_mask(tau=0.05, sigma=10.0))(**batch)
    assert bool((on.state.parts["policy"].mask <= base.state.parts["policy"].mask).all())
    assert float(on.metrics["mask/mastered_frac"]) > 0
    # clip_cov in place of the preset's clip: with a band no token reaches, the same loss
    eps_high = preset.terms[[type(t) for t in preset.terms].index(clip_ratio)].eps_high
    same = Objective(preset.replace(clip_ratio, clip_cov(cov_low=1e6, cov_high=1e7, eps_low=0.2, eps_high=eps_high)))(**batch)
    torch.testing.assert_close(same.loss, base.loss)
    detached = Objective(preset.replace(clip_ratio, clip_cov(eps_low=0.2, eps_high=0.2, ratio=0.2, cov_low=-1e6, cov_high=1e6, seed=0)))(**batch)
    assert float(detached.metrics["clip_cov/frac"]) > 0
    kl = Objective(preset.replace(clip_ratio, kl_cov(ratio=0.2)))(**batch)
    assert torch.isfinite(kl.loss)
    kl.loss.backward()
    assert torch.isfinite(batch["logp"].grad).all()
