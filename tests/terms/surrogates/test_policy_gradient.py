"""Policy-gradient surrogates (rlobj/terms/surrogates/policy_gradient.py): the test layers of
DESIGN.md s.7. The IS corrections are tested in tests/terms/masks/test_importance_weights.py; the
shared inputs and every surrogate's loop reference are in _pg_references.py.

Per term: hand-computed values on tiny tensors, a plain-loop reference compared on Hypothesis
inputs (padding, both advantage signs, ratios inside and outside the clip range), gradient
checks (gradcheck in float64 where smooth, analytic gradients otherwise), properties from the
math, golden numbers where the reference implementations differ, and bad input.
"""

import math

import pytest
import torch
from batches import F64, t
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from terms.surrogates._pg_references import (
    active_ppo,
    base_kw,
    batches,
    clip,
    compare,
    fields,
    policy_values,
    ppo_grad_ref,
    ref_cispo,
    ref_clip_ratio,
    ref_delta_clip,
    ref_geometric_clip,
    ref_reinforce,
    ref_sapo,
    ref_seq_ratio,
    ref_sequence_clip,
    sigmoid,
    valid,
    zeros_like_mask,
)

from rlobj.algebra import seq_mean_token_mean
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.masks import geometric_is_mask, masked_is, truncated_is
from rlobj.terms.surrogates import (
    clip_ratio,
    clipped_weight_pg,
    delta_clip,
    geometric_clip,
    reinforce,
    sequence_clip,
    soft_gate,
)


# =========================================================================== reinforce
def test_reinforce_hand_values():
    # logp = [[log .5, log .25], [log .8, pad]], A = [[1, 1], [-2, pad]]
    # per token -A*logp: [0.693147, 1.386294], [2*log .8 = -0.446287]; token mean over 3
    logp = t([[math.log(0.5), math.log(0.25)], [math.log(0.8), 0.0]])
    out = reinforce().loss(logp=logp, mask=t([[1, 1], [1, 0]]).bool(), advantages=t([[1.0, 1.0], [-2.0, 0.0]]))
    assert policy_values(out)[0].tolist() == pytest.approx([0.6931471806, 1.3862943611])
    assert float(policy_values(out)[1, 0]) == pytest.approx(-0.4462871026)
    assert float(out.loss.detach()) == pytest.approx((0.6931471806 + 1.3862943611 - 0.4462871026) / 3)


@given(batches())
def test_reinforce_matches_loop_reference(batch):
    out = reinforce().loss(**fields(batch))
    compare(out, ref_reinforce(batch), batch["mask"].tolist())


def test_reinforce_needs_no_logp_old_and_gradcheck():
    mask = t([[1, 1, 0], [1, 1, 1]]).bool()
    adv = t([[0.5, 0.5, 0.0], [-1.0, -1.0, -1.0]])

    def f(logp):
        return reinforce().loss(logp=logp, mask=mask, advantages=adv).loss

    logp = t([[-0.3, -1.2, -0.5], [-2.0, -0.1, -0.7]]).requires_grad_()
    assert torch.autograd.gradcheck(f, (logp,))
    f(logp).backward()
    # d/dlogp of mean(-A logp) over 5 tokens = -A/5 (0 on padding)
    torch.testing.assert_close(logp.grad, t([[-0.1, -0.1, 0.0], [0.2, 0.2, 0.2]]))


# =========================================================================== clip_ratio
def test_clip_ratio_hand_values():
    # ratios: exp(log .5 - log .4) = 1.25, exp(log .25 - log .5) = 0.5, 1.0 (padding ignored)
    # A=+1, r=1.25 > 1.2: max(-1.25, -1.2) = -1.2 (clipped)
    # A=-1, r=0.5 < 0.8: max(0.5, 0.8) = 0.8 (clipped)
    logp = torch.log(t([[0.5, 0.25, 0.9]]))
    logp_old = torch.log(t([[0.4, 0.5, 0.9]]))
    out = clip_ratio().loss(logp=logp, logp_old=logp_old, mask=t([[1, 1, 0]]).bool(),
                            advantages=t([[1.0, -1.0, 5.0]]))
    assert policy_values(out)[0, :2].tolist() == pytest.approx([-1.2, 0.8])
    assert float(out.loss.detach()) == pytest.approx(-0.2)
    assert float(out.metrics["clip_frac"]) == 1.0
    assert float(out.metrics["ratio/mean"]) == pytest.approx(0.875)
    # k3 of KL(old || theta) per token: exp(-log r) - 1 + log r
    k3 = [(1 / r) - 1 + math.log(r) for r in (1.25, 0.5)]
    assert float(out.metrics["kl/old_policy"]) == pytest.approx(sum(k3) / 2)


def test_clip_ratio_golden_dapo_and_dual_clip():
    # DAPO eps_low 0.2, eps_high 0.28: A=+1, r=1.5 -> -1.28; A=+1, r=1.1 -> -1.1 (inside);
    # A=-1, r=0.5 -> 0.8; dual clip c=3: A=-1, r=5 -> min(max(5, 1.28), 3) = 3
    ratios = t([[1.5, 1.1, 0.5, 5.0]])
    logp_old = torch.log(t([[0.1, 0.1, 0.1, 0.1]]))
    logp = logp_old + torch.log(ratios)
    adv = t([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    out = clip_ratio(eps_low=0.2, eps_high=0.28, dual_clip=3.0).loss(
        logp=logp, logp_old=logp_old, mask=mask, advantages=adv)
    assert policy_values(out)[0].tolist() == pytest.approx([-1.28, -1.1, 0.8, 3.0])
    no_dual = clip_ratio(eps_low=0.2, eps_high=0.28).loss(logp=logp, logp_old=logp_old, mask=mask, advantages=adv)
    assert float(policy_values(no_dual)[0, 3]) == pytest.approx(5.0)


def test_clip_ratio_golden_log_ratio_clamp_20():
    # verl clamps log(rho) to [-20, 20] before exp.
    # log ratio +30, A=-1 (no dual clip): loss = -A*exp(20); log ratio -30, A=+1: -A*exp(-20)
    logp = t([[0.0, -30.0]])
    logp_old = t([[-30.0, 0.0]])
    out = clip_ratio().loss(logp=logp, logp_old=logp_old, mask=torch.ones(1, 2, dtype=torch.bool),
                            advantages=t([[-1.0, 1.0]]))
    assert policy_values(out)[0].tolist() == pytest.approx([math.exp(20.0), -math.exp(-20.0)], rel=1e-12)
    wider = clip_ratio(log_ratio_clamp=40.0).loss(logp=logp, logp_old=logp_old,
                                                  mask=torch.ones(1, 2, dtype=torch.bool),
                                                  advantages=t([[-1.0, 1.0]]))
    assert float(policy_values(wider)[0, 0]) == pytest.approx(math.exp(30.0), rel=1e-12)


@given(batches(), st.sampled_from([(0.2, 0.2), (0.2, 0.28), (0.1, 0.5), (1.0, 0.3)]),
       st.sampled_from([None, 1.5, 3.0]))
def test_clip_ratio_matches_loop_reference(batch, eps, dual):
    out = clip_ratio(eps_low=eps[0], eps_high=eps[1], dual_clip=dual).loss(**fields(batch))
    compare(out, ref_clip_ratio(batch, eps[0], eps[1], dual), batch["mask"].tolist())


@given(batches(), st.sampled_from([(0.2, 0.2), (0.2, 0.28)]), st.sampled_from([None, 1.3, 3.0]))
def test_clip_ratio_gradient_is_exactly_zero_where_clipped(batch, eps, dual):
    f = fields(batch, grad=True)
    clip_ratio(eps_low=eps[0], eps_high=eps[1], dual_clip=dual).loss(**f).loss.backward()
    expected = ppo_grad_ref(batch, eps[0], eps[1], dual)
    grad = f["logp"].grad
    for i, row in enumerate(batch["mask"].tolist()):
        for j, m in enumerate(row):
            if m and expected[i][j] == 0.0:
                assert float(grad[i, j]) == 0.0  # exactly zero, not merely small
            else:
                assert float(grad[i, j]) == pytest.approx(expected[i][j], rel=1e-9, abs=1e-15)


def test_clip_ratio_gradcheck_away_from_kinks():
    logp_old = torch.log(t([[0.3, 0.5, 0.2], [0.6, 0.1, 0.4]]))
    ratios = t([[1.1, 1.6, 0.5], [0.9, 0.7, 4.0]])  # none at 0.8, 1.2 or the dual cap 3
    logp = (logp_old + torch.log(ratios)).requires_grad_()
    adv = t([[1.0, 1.0, -1.0], [-0.5, 0.7, -2.0]])
    mask = t([[1, 1, 1], [1, 1, 0]]).bool()

    def f(lp):
        return clip_ratio(dual_clip=3.0).loss(logp=lp, logp_old=logp_old, mask=mask, advantages=adv).loss

    assert torch.autograd.gradcheck(f, (logp,))


@given(batches(), st.floats(0.05, 0.5))
def test_equal_eps_recovers_ppo(batch, eps):
    # PPO (arXiv 1707.06347 Eq. 7): -min(rho A, clip(rho, 1-eps, 1+eps) A)
    mask, lp, lo, adv = valid(batch)
    ppo = zeros_like_mask(mask)
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if m:
                r = math.exp(lp[i][j] - lo[i][j])
                ppo[i][j] = -min(r * adv[i][j], clip(r, 1 - eps, 1 + eps) * adv[i][j])
    compare(clip_ratio(eps_low=eps, eps_high=eps).loss(**fields(batch)), ppo, mask)


# =========================================================================== delta_clip
def test_delta_clip_hand_values():
    # delta 4, eps 0.2: A=-1, r=6 -> -min(4*-1, 1.2*-1) = 4; A=-1, r=2 -> -min(-2, -1.2) = 2;
    # A=+1, r=6 -> -min(4, 1.2) = -1.2; A=+1, r=0.5 -> -min(0.5, 0.8) = -0.5
    logp_old = torch.log(t([[0.1, 0.1, 0.1, 0.1]]))
    logp = logp_old + torch.log(t([[6.0, 2.0, 6.0, 0.5]]))
    out = delta_clip(delta=4.0).loss(logp=logp, logp_old=logp_old, mask=torch.ones(1, 4, dtype=torch.bool),
                                     advantages=t([[-1.0, -1.0, 1.0, 1.0]]))
    assert policy_values(out)[0].tolist() == pytest.approx([4.0, 2.0, -1.2, -0.5])
    assert float(out.metrics["clip_frac"]) == pytest.approx(0.5)


@given(batches(), st.sampled_from([1.3, 2.0, 4.0]), st.sampled_from([(0.2, 0.2), (0.2, 0.28)]))
def test_delta_clip_matches_loop_reference_and_equals_dual_clip(batch, delta, eps):
    out = delta_clip(delta=delta, eps_low=eps[0], eps_high=eps[1]).loss(**fields(batch))
    compare(out, ref_delta_clip(batch, delta, eps[0], eps[1]), batch["mask"].tolist())
    # identity: delta_clip(delta) == clip_ratio(dual_clip=delta), values and gradients
    f1, f2 = fields(batch, grad=True), fields(batch, grad=True)
    a = delta_clip(delta=delta, eps_low=eps[0], eps_high=eps[1]).loss(**f1)
    b = clip_ratio(eps_low=eps[0], eps_high=eps[1], dual_clip=delta).loss(**f2)
    torch.testing.assert_close(policy_values(a), policy_values(b))
    a.loss.backward()
    b.loss.backward()
    torch.testing.assert_close(f1["logp"].grad, f2["logp"].grad)


# =========================================================================== sequence_clip (GSPO)
def test_sequence_clip_hand_values():
    # row 0: log ratios log 1.5, log(2/3) -> mean 0 -> s = 1: loss -A = [-1, -1]
    # row 1: log ratio log 2 (one token, one pad) -> s = 2 > 1.2 with A=+0.5: -0.5*1.2 = -0.6
    logp_old = torch.log(t([[0.2, 0.3], [0.25, 0.5]]))
    logp = logp_old + torch.log(t([[1.5, 2.0 / 3.0], [2.0, 1.0]]))
    kw = {"logp": logp, "logp_old": logp_old, "mask": t([[1, 1], [1, 0]]).bool(),
          "advantages": t([[1.0, 1.0], [0.5, 0.5]])}
    out = sequence_clip(eps_low=0.2, eps_high=0.2).loss(**kw)
    values = policy_values(out)
    assert values[0].tolist() == pytest.approx([-1.0, -1.0])
    assert float(values[1, 0]) == pytest.approx(-0.6)
    assert float(out.metrics["clip_frac"]) == pytest.approx(1 / 3)
    # reference eps 3e-4 / 4e-4: row 1 clipped at 1.0004
    out = sequence_clip().loss(**kw)
    assert float(policy_values(out)[1, 0]) == pytest.approx(-0.5 * 1.0004)


def test_sequence_clip_golden_clamp_10():
    # GSPO clamps the mean log-ratio at 10 (upper side only): mean log ratio 25 -> s = e^10, A<0
    logp, logp_old = t([[0.0]]), t([[-25.0]])
    out = sequence_clip().loss(logp=logp, logp_old=logp_old, mask=torch.ones(1, 1, dtype=torch.bool),
                               advantages=t([[-1.0]]))
    assert float(policy_values(out)[0, 0]) == pytest.approx(math.exp(10.0), rel=1e-12)


@given(batches(nonempty_rows=True), st.booleans(), st.sampled_from([(3e-4, 4e-4), (0.2, 0.2), (0.1, 0.3)]))
def test_sequence_clip_matches_loop_reference(batch, token_level, eps):
    out = sequence_clip(eps_low=eps[0], eps_high=eps[1], token_level=token_level).loss(**fields(batch))
    compare(out, ref_sequence_clip(batch, eps[0], eps[1]), batch["mask"].tolist())


@given(batches(nonempty_rows=True), st.sampled_from([(3e-4, 4e-4), (0.2, 0.2)]))
def test_sequence_clip_gradients_analytic(batch, eps):
    eps_low, eps_high = eps
    mask, lp, lo, adv = valid(batch)
    count = sum(map(sum, mask))
    seq_grad, tok_grad = zeros_like_mask(mask), zeros_like_mask(mask)
    for i, row in enumerate(mask):
        s = ref_seq_ratio(lp[i], lo[i], row)
        length = sum(row)
        active = [m and active_ppo(s, adv[i][j], eps_low, eps_high, None) for j, m in enumerate(row)]
        # GSPO: every token's loss is -A_u s_i, ds_i/dlogp_t = s_i / |y_i|
        total = sum(-adv[i][j] * s for j in range(len(row)) if active[j])
        for j, m in enumerate(row):
            if m:
                seq_grad[i][j] = total / length / count
                # GSPO-token: s_{i,t} = sg[s_i] pi/sg[pi] -> gradient -A_t s_i on its own token
                tok_grad[i][j] = -adv[i][j] * s / count if active[j] else 0.0
    for token_level, expected in ((False, seq_grad), (True, tok_grad)):
        f = fields(batch, grad=True)
        sequence_clip(eps_low=eps_low, eps_high=eps_high, token_level=token_level).loss(**f).loss.backward()
        got = f["logp"].grad
        for i, row in enumerate(mask):
            for j in range(len(row)):
                assert float(got[i, j]) == pytest.approx(expected[i][j], rel=1e-8, abs=1e-14)


@given(batches(nonempty_rows=True, per_sequence_adv=True))
def test_gspo_token_same_value_and_gradient_as_gspo_for_sequence_advantages(batch):
    # Zheng et al. Eq. 10: with A_{i,t} = A_i, GSPO-token = GSPO in value and gradient
    # (seq_mean_token_mean, the paper's aggregation)
    outs, grads = [], []
    for token_level in (False, True):
        f = fields(batch, grad=True)
        out = (sequence_clip(eps_low=0.1, eps_high=0.1, token_level=token_level) >> seq_mean_token_mean()).loss(**f)
        out.loss.backward()
        outs.append(out)
        grads.append(f["logp"].grad)
    torch.testing.assert_close(policy_values(outs[0]), policy_values(outs[1]))
    torch.testing.assert_close(outs[0].loss, outs[1].loss)
    torch.testing.assert_close(grads[0], grads[1])


@given(batches(nonempty_rows=True), st.integers(0, 2**31 - 1))
def test_gspo_ratio_invariant_to_token_order(batch, seed):
    # permute the valid tokens inside each row (logp, logp_old together): s_i is unchanged
    g = torch.Generator().manual_seed(seed)
    permuted = {k: v.clone() for k, v in batch.items()}
    for i in range(batch["mask"].shape[0]):
        idx = batch["mask"][i].nonzero().flatten()
        perm = idx[torch.randperm(idx.numel(), generator=g)]
        for key in ("logp", "logp_old"):
            permuted[key][i, idx] = batch[key][i, perm]
    # one advantage per sequence so the per-token losses are permutation-free too
    for b in (batch, permuted):
        b["advantages"] = torch.where(b["mask"], b["advantages"][:, :1].expand_as(b["advantages"]), 0.0)
    a = sequence_clip(eps_low=0.1, eps_high=0.1).loss(**fields(batch))
    b = sequence_clip(eps_low=0.1, eps_high=0.1).loss(**fields(permuted))
    torch.testing.assert_close(policy_values(a), policy_values(b))


@given(batches(nonempty_rows=True))
def test_gspo_ratio_is_one_on_policy(batch):
    batch = dict(batch, logp_old=torch.where(batch["mask"], batch["logp"], batch["logp_old"]))
    out = sequence_clip().loss(**fields(batch))
    adv = torch.where(batch["mask"], batch["advantages"], 0.0)
    torch.testing.assert_close(policy_values(out), -adv)  # s = 1: -A
    assert float(out.metrics["clip_frac"]) == 0.0


def test_gspo_equal_token_ratios_give_that_ratio_and_clip_per_sequence():
    # row 0: every token ratio 1.5 -> s = 1.5 (clipped at 1.2 for A>0: all tokens, zero grad)
    # row 1: ratios 2 and 0.5 -> s = 1 (not clipped: every token has a gradient)
    logp_old = torch.log(t([[0.2, 0.3, 0.4], [0.2, 0.6, 0.1]]))
    logp = (logp_old + torch.log(t([[1.5, 1.5, 1.5], [2.0, 0.5, 1.0]]))).requires_grad_()
    mask = t([[1, 1, 1], [1, 1, 0]]).bool()
    adv = t([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    out = sequence_clip(eps_low=0.2, eps_high=0.2, token_level=True).loss(
        logp=logp, logp_old=logp_old, mask=mask, advantages=adv)
    assert policy_values(out)[0].tolist() == pytest.approx([-1.2] * 3)
    out.loss.backward()
    assert logp.grad[0].tolist() == [0.0, 0.0, 0.0]
    assert bool((logp.grad[1, :2] != 0).all())


# =========================================================================== geometric_clip (GMPO)
def test_geometric_clip_hand_values():
    # row 0, A=+1: log ratios 0.6, -0.2 -> clipped to 0.4 (upper side), -0.2 kept
    #   -> exp((0.4 - 0.2)/2) = exp(0.1); loss -exp(0.1) on both tokens
    # row 1, A=-2: log ratios -0.6, 0.2 -> -0.6 clipped to -0.4, 0.2 kept -> exp(-0.1); loss 2*exp(-0.1)
    logp_old = t([[-1.0, -1.0], [-1.0, -1.0]])
    logp = logp_old + t([[0.6, -0.2], [-0.6, 0.2]])
    out = geometric_clip().loss(logp=logp, logp_old=logp_old, mask=torch.ones(2, 2, dtype=torch.bool),
                                advantages=t([[1.0, 1.0], [-2.0, -2.0]]))
    values = policy_values(out)
    assert values[0].tolist() == pytest.approx([-math.exp(0.1)] * 2)
    assert values[1].tolist() == pytest.approx([2 * math.exp(-0.1)] * 2)
    assert float(out.metrics["clip_frac"]) == pytest.approx(0.5)


@given(batches(nonempty_rows=True), st.sampled_from([0.1, 0.4, 1.0]))
def test_geometric_clip_matches_loop_reference(batch, eps):
    out = geometric_clip(eps=eps).loss(**fields(batch))
    compare(out, ref_geometric_clip(batch, eps), batch["mask"].tolist())


@given(batches(nonempty_rows=True))
def test_geometric_clip_without_clipping_is_exp_mean_log_ratio(batch):
    # eps larger than any |log ratio|: l_i = -A_i exp(mean_t log rho_t) (the geometric mean)
    mask, lp, lo, adv = valid(batch)
    out = geometric_clip(eps=100.0).loss(**fields(batch))
    for i, row in enumerate(mask):
        idx = [j for j, m in enumerate(row) if m]
        a = sum(adv[i][j] for j in idx) / len(idx)
        geo = math.exp(sum(lp[i][j] - lo[i][j] for j in idx) / len(idx))
        for j in idx:
            assert float(policy_values(out)[i, j]) == pytest.approx(-a * geo, rel=1e-9, abs=1e-12)


@given(batches(nonempty_rows=True), st.sampled_from([0.1, 0.4]))
def test_geometric_clip_gradient_analytic(batch, eps):
    # token_mean of |y_i| copies of l_i: dL/dlogp_t = -A_i * ratio_i * g_t / N, g_t = 1 unless
    # the token is clipped (sign(A) * log rho_t > eps)
    mask, lp, lo, adv = valid(batch)
    count = sum(map(sum, mask))
    f = fields(batch, grad=True)
    geometric_clip(eps=eps).loss(**f).loss.backward()
    for i, row in enumerate(mask):
        idx = [j for j, m in enumerate(row) if m]
        a = sum(adv[i][j] for j in idx) / len(idx)
        sign = (a > 0) - (a < 0)
        kept = [sign * min(sign * (lp[i][j] - lo[i][j]), clip(sign * (lp[i][j] - lo[i][j]), -eps, eps)) for j in idx]
        ratio = math.exp(sum(kept) / len(idx))
        for j in idx:
            gate = 0.0 if sign * (lp[i][j] - lo[i][j]) > eps else 1.0
            assert float(f["logp"].grad[i, j]) == pytest.approx(-a * ratio * gate / count, rel=1e-8, abs=1e-14)


def test_geometric_clip_gradcheck():
    logp_old = t([[-1.0, -0.5, -2.0], [-0.3, -0.9, -1.1]])
    logp = (logp_old + t([[0.1, -0.3, 0.6], [-0.1, 0.2, 0.0]])).clamp(max=-1e-3).requires_grad_()
    mask = t([[1, 1, 1], [1, 1, 0]]).bool()
    adv = t([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]])

    def f(lp):
        return geometric_clip().loss(logp=lp, logp_old=logp_old, mask=mask, advantages=adv).loss

    assert torch.autograd.gradcheck(f, (logp,))


# =========================================================================== CISPO
def test_cispo_hand_values():
    # r = 2 -> weight clip(2, 0, 1.28) = 1.28; A=+1, logp = log .5: -1.28 * log .5 = 0.887228
    # r = 0.25 (A=-1) -> weight 0.25 (no lower bound): 0.25 * log .1 = -0.575646
    logp = torch.log(t([[0.5, 0.1]]))
    logp_old = torch.log(t([[0.25, 0.4]]))
    out = clipped_weight_pg().loss(logp=logp, logp_old=logp_old, mask=torch.ones(1, 2, dtype=torch.bool),
                                   advantages=t([[1.0, -1.0]]))
    assert policy_values(out)[0].tolist() == pytest.approx([-1.28 * math.log(0.5), 0.25 * math.log(0.1)])
    assert float(out.metrics["clip_frac"]) == pytest.approx(0.5)


@given(batches(), st.sampled_from([(1.0, 0.28), (0.2, 0.2), (1.0, 4.0)]))
def test_cispo_matches_loop_reference_and_keeps_every_gradient(batch, eps):
    f = fields(batch, grad=True)
    out = clipped_weight_pg(eps_low=eps[0], eps_high=eps[1]).loss(**f)
    compare(out, ref_cispo(batch, *eps), batch["mask"].tolist())
    out.loss.backward()
    mask, lp, lo, adv = valid(batch)
    count = max(sum(map(sum, mask)), 1)
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            w = clip(math.exp(lp[i][j] - lo[i][j]), 1 - eps[0], 1 + eps[1]) if m else 0.0
            expected = -w * adv[i][j] / count if m else 0.0  # weight is stop-gradient
            assert float(f["logp"].grad[i, j]) == pytest.approx(expected, rel=1e-9, abs=1e-15)
            if m and adv[i][j] != 0.0 and eps[0] < 1.0:
                assert float(f["logp"].grad[i, j]) != 0.0  # clipped tokens still get a gradient


# =========================================================================== SAPO
def test_sapo_hand_values():
    # r = 1, A=+1, tau 1: -(4/1) sigma(0) = -2; r = 2, A=-1, tau 1.05: (4/1.05) sigma(1.05)
    logp = torch.log(t([[0.5, 0.4]]))
    logp_old = torch.log(t([[0.5, 0.2]]))
    out = soft_gate().loss(logp=logp, logp_old=logp_old, mask=torch.ones(1, 2, dtype=torch.bool),
                           advantages=t([[1.0, -1.0]]))
    assert policy_values(out)[0].tolist() == pytest.approx([-2.0, 4 / 1.05 * sigmoid(1.05)], rel=1e-12)


@given(batches(), st.sampled_from([(1.0, 1.05), (0.5, 2.0)]))
def test_sapo_matches_loop_reference_and_gradient(batch, taus):
    f = fields(batch, grad=True)
    out = soft_gate(tau_pos=taus[0], tau_neg=taus[1]).loss(**f)
    compare(out, ref_sapo(batch, *taus), batch["mask"].tolist(), rel=1e-12)
    out.loss.backward()
    # dl/dlogp = -A * 4 sigma (1 - sigma) rho  (tau cancels)
    mask, lp, lo, adv = valid(batch)
    count = max(sum(map(sum, mask)), 1)
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if not m:
                assert float(f["logp"].grad[i, j]) == 0.0
                continue
            a = adv[i][j]
            tau = taus[0] if a > 0 else taus[1]
            r = math.exp(lp[i][j] - lo[i][j])
            sig = sigmoid(tau * (r - 1))
            assert float(f["logp"].grad[i, j]) == pytest.approx(-a * 4 * sig * (1 - sig) * r / count,
                                                                rel=1e-9, abs=1e-15)


def test_sapo_gradient_weight_is_one_on_policy_and_gradcheck():
    logp = torch.log(t([[0.3, 0.6, 0.2]])).requires_grad_()
    adv = t([[1.0, -2.0, 0.5]])
    mask = torch.ones(1, 3, dtype=torch.bool)

    def f(lp, old):
        return soft_gate().loss(logp=lp, logp_old=old, mask=mask, advantages=adv).loss

    f(logp, logp.detach()).backward()
    # rho = 1: weight 4 * 1/2 * 1/2 * 1 = 1 -> the plain policy gradient -A/N
    torch.testing.assert_close(logp.grad, t([[-1 / 3, 2 / 3, -0.5 / 3]]), rtol=1e-12, atol=0)
    old = torch.log(t([[0.5, 0.2, 0.25]]))
    assert torch.autograd.gradcheck(lambda lp: f(lp, old), (logp.detach().clone().requires_grad_(),))


# =========================================================================== dtypes
@pytest.mark.parametrize("term", [clip_ratio(dual_clip=3.0), delta_clip(), sequence_clip(), geometric_clip(),
                                  clipped_weight_pg(), soft_gate(), reinforce()])
def test_surrogates_keep_float64_precision(term):
    logp_old = torch.log(t([[0.3, 0.5], [0.2, 0.7]]))
    logp = logp_old + t([[0.05, -0.3], [0.4, 0.0]])
    out = term.loss(logp=logp, logp_old=logp_old, mask=torch.ones(2, 2, dtype=torch.bool),
                    advantages=t([[1.0, -1.0], [-0.5, 2.0]]))
    assert policy_values(out).dtype == F64 and out.loss.dtype == F64
    # the same in float32 agrees to float32 precision (no float32 constants in float64 math)
    out32 = term.loss(logp=logp.float(), logp_old=logp_old.float(), mask=torch.ones(2, 2, dtype=torch.bool),
                      advantages=t([[1.0, -1.0], [-0.5, 2.0]], torch.float32))
    torch.testing.assert_close(policy_values(out32).double(), policy_values(out), rtol=1e-5, atol=1e-6)


def test_sapo_float64_tau_is_exact():
    # tau_neg = 1.05 must not be rounded to float32 (1.0499999523)
    logp = torch.log(t([[0.4]]))
    logp_old = torch.log(t([[0.2]]))
    out = soft_gate().loss(logp=logp, logp_old=logp_old, mask=torch.ones(1, 1, dtype=torch.bool),
                           advantages=t([[-1.0]]))
    assert float(policy_values(out)[0, 0]) == pytest.approx(4 / 1.05 * sigmoid(1.05), rel=1e-14)


# =========================================================================== bad input
SURROGATES = [clip_ratio(), delta_clip(), sequence_clip(), geometric_clip(), clipped_weight_pg(), soft_gate()]


@pytest.mark.parametrize("term", SURROGATES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("missing", ["logp_old", "advantages"])
def test_missing_inputs_name_the_field_and_term(term, missing):
    kw = base_kw()
    del kw[missing]
    with pytest.raises(RlobjInputError, match=missing) as info:
        term.loss(**kw)
    assert type(term).__name__ in str(info.value)


def test_reinforce_missing_advantages():
    kw = base_kw()
    del kw["advantages"]
    with pytest.raises(RlobjInputError, match="reinforce reads 'advantages'"):
        reinforce().loss(**kw)


@pytest.mark.parametrize("build, match", [
    (lambda: clip_ratio(eps_low=-0.1), "clip_ratio.eps_low"),
    (lambda: clip_ratio(eps_low=1.5), "clip_ratio.eps_low"),
    (lambda: clip_ratio(eps_high=-0.1), "clip_ratio.eps_high"),
    (lambda: clip_ratio(dual_clip=1.0), "clip_ratio.dual_clip"),
    (lambda: clip_ratio(log_ratio_clamp=0.0), "clip_ratio.log_ratio_clamp"),
    (lambda: delta_clip(delta=1.0), "delta_clip.delta"),
    (lambda: delta_clip(delta=1.1, eps_high=0.2), "delta_clip.delta"),
    (lambda: delta_clip(eps_low=2.0), "delta_clip.eps_low"),
    (lambda: sequence_clip(eps_low=-1e-4), "sequence_clip.eps_low"),
    (lambda: sequence_clip(eps_high=-1e-4), "sequence_clip.eps_high"),
    (lambda: geometric_clip(eps=0.0), "geometric_clip.eps"),
    (lambda: clipped_weight_pg(eps_low=1.5), "clipped_weight_pg.eps_low"),
    (lambda: clipped_weight_pg(eps_high=-0.5), "clipped_weight_pg.eps_high"),
    (lambda: soft_gate(tau_pos=0.0), "soft_gate.tau_pos"),
    (lambda: soft_gate(tau_neg=-1.0), "soft_gate.tau_neg"),
    (lambda: truncated_is(cap=0.0), "truncated_is.cap"),
    (lambda: truncated_is(level="tokens"), "truncated_is.level"),
    (lambda: masked_is(low=2.0, high=1.0), "masked_is"),
    (lambda: masked_is(low=-1.0), "masked_is.low"),
    (lambda: masked_is(level="seq"), "masked_is.level"),
    (lambda: geometric_is_mask(low=3.0, high=2.0), "geometric_is_mask"),
])
def test_invalid_hyperparameters(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


def test_delta_clip_refused_inside_trust_region_was_not_an_identity():
    # why delta >= 1 + eps_high: with delta 1.1 < 1.2 the cap would bind for A>0 at rho=1.15
    # (-min(1.1, 1.15) = -1.1 instead of PPO's -1.15), so "delta_clip == dual clip" would fail
    with pytest.raises(RlobjInputError, match=r"expected >= 1.2, got 1.1"):
        delta_clip(delta=1.1, eps_high=0.2)
    assert delta_clip(delta=1.2, eps_high=0.2).delta == 1.2


@given(st.data())
@settings(max_examples=10)
def test_padding_garbage_never_reaches_surrogates(data):
    batch = data.draw(batches(nonempty_rows=True))
    assume(not bool(batch["mask"].all()))
    clean = {k: torch.where(batch["mask"], v, torch.zeros_like(v)) if v.dtype == F64 else v
             for k, v in batch.items()}
    for term in SURROGATES + [reinforce()]:
        a = term.loss(**fields(batch))
        b = term.loss(**fields(clean))
        torch.testing.assert_close(a.loss, b.loss)
