"""clip_cov / kl_cov (rlobj/terms/surrogates/covariance.py; Cui et al., arXiv 2505.22617, as verl
implements them): hand values with the arithmetic in comments, plain-loop references on Hypothesis
inputs, gradients (exactly zero on detached tokens), bad input, and composition with grpo / dr_grpo /
dapo."""

import itertools
import math

import pytest
import torch
from batches import presets, t
from hypothesis import given
from hypothesis import strategies as st
from terms._confident_batches import confident_batches, confident_kw, valid

from rlobj import (
    Objective,
    clip_cov,
    clip_ratio,
    kl_cov,
    token_mean,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.surrogates import token_covariance

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


@given(confident_batches(), st.sampled_from([0.05, 0.2, 0.5, 1.0]), st.integers(0, 1000))
def test_clip_cov_matches_loop_reference(batch, ratio, seed):
    fields = confident_kw(batch, grad=True)
    term = clip_cov(eps_low=0.2, eps_high=0.2, ratio=ratio, cov_low=-0.5, cov_high=1.5, seed=seed)
    out = (term >> token_mean()).loss(**fields)
    detached = {(i, j) for i, j in valid(batch) if not bool(out.state.parts["policy"].mask[i, j])}
    band, pairs = ref_band(batch, 0.2, -0.5, 1.5), valid(batch)
    assert detached <= band
    assert len(detached) == min(len(band), max(1, int(ratio * len(pairs))))
    # same seed, same subset; loss = PPO loss of the others over all N tokens
    again = (term >> token_mean()).loss(**confident_kw(batch))
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


@given(confident_batches(), st.sampled_from([0.01, 0.2, 0.5, 1.0]), st.sampled_from([0.1, 1.0]))
def test_kl_cov_matches_loop_reference(batch, ratio, beta):
    fields = confident_kw(batch, grad=True)
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


# =========================================================================== composition
@presets()
def test_clip_cov_and_kl_cov_composition_with_presets(preset):
    from batches import leaf, make_batch

    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=5))
    base = Objective(preset)(**batch)
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
