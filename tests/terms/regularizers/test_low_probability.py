"""Lp-Reg (rlobj/terms/regularizers/low_probability.py; its proxy query, lp_reg_proxy.py, is tested in
test_lp_reg_proxy.py): the
base loss at rho = 0, the selection rules, hand values, the penalty's gradient, the proxy from the old
view against the precomputed one, a loop reference on the selected tokens, order and bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from terms._vocab_batches import _lp_batch

from rlobj import (
    Objective,
    State,
    clip_ratio,
    grpo,
    lp_reg,
)
from rlobj.ops.errors import RlobjBuildError, RlobjInputError
from rlobj.ops.vocab import TopK
from rlobj.terms import lp_reg_proxy_topk, lp_reg_selection

F64 = torch.float64
SETTINGS = settings(max_examples=25)


# ------------------------------------------------------------------------------------------
# Lp-Reg
# ------------------------------------------------------------------------------------------


def test_lp_reg_rho_zero_gives_exactly_the_base_loss():
    batch = _lp_batch(seed=1)
    base = Objective(grpo)(**batch)
    for kwargs in ({"rho": 0.0}, {"rho": 0.0, "strict_reference_quirk": False}):
        out = Objective(grpo >> lp_reg(0.02, **kwargs))(**batch)
        assert torch.equal(out.loss, base.loss)
        assert torch.equal(out.state.parts["policy"].values, base.state.parts["policy"].values)


@SETTINGS
@given(seed=st.integers(0, 10_000), rho=st.sampled_from([0.05, 0.2, 0.5, 1.0]),
       scope=st.sampled_from(["micro_batch", "sequence"]), quirk=st.booleans())
def test_lp_reg_selection_rules(seed, rho, scope, quirk):
    g = torch.Generator().manual_seed(seed)
    shape = (3, 6)
    mask = torch.rand(shape, generator=g) < 0.8
    logp = -3 * torch.rand(shape, generator=g)
    proxy = torch.where(torch.rand(shape, generator=g) < 0.2, torch.full(shape, -1e4), logp + torch.randn(shape, generator=g))
    advantages = torch.randn(shape, generator=g)
    selected = lp_reg_selection(logp, proxy, advantages, mask, rho, scope, quirk)
    negatives = mask & (advantages < 0)
    assert not (selected & ~negatives).any()  # subset of the valid negative-advantage tokens
    assert (logp[selected] < proxy[selected]).all()  # strict pi < proxy, never a filtered token
    groups = [negatives[i] for i in range(3)] if scope == "sequence" else [negatives.flatten()]
    rows = [selected[i] for i in range(3)] if scope == "sequence" else [selected.flatten()]
    scores = [logp[i] for i in range(3)] if scope == "sequence" else [logp.flatten()]
    for neg, sel, score in zip(groups, rows, scores):
        k = int(rho * int(neg.sum()))
        k = (k if k > 1 else 0) if quirk else (max(1, k) if neg.any() else 0)
        assert int(sel.sum()) <= k
        # before the proxy filter the k chosen tokens are the lowest-logp negatives
        chosen = lp_reg_selection(score[None], torch.zeros_like(score[None]), torch.where(neg, -1.0, 1.0)[None],
                                  neg[None], rho, "micro_batch", quirk)[0]
        assert int(chosen.sum()) == k
        if k and bool((neg & ~chosen).any()):
            assert score[chosen].max() <= score[neg & ~chosen].min()


def test_lp_reg_quirk_selects_nothing_when_k_is_one():
    logp = torch.tensor([[-5.0, -1.0, -2.0, -3.0]])
    proxy = torch.zeros(1, 4) - 0.1
    advantages = -torch.ones(1, 4)
    mask = torch.ones(1, 4, dtype=torch.bool)
    # k = int(0.4 * 4) = 1: the reference runs nothing; without the quirk the lowest token is taken
    assert not lp_reg_selection(logp, proxy, advantages, mask, 0.4, "micro_batch", True).any()
    assert lp_reg_selection(logp, proxy, advantages, mask, 0.4, "micro_batch", False).tolist() == [[True, False, False, False]]
    # k = int(0.5 * 4) = 2 > 1: the two lowest
    assert lp_reg_selection(logp, proxy, advantages, mask, 0.5, "micro_batch", True).tolist() == [[True, False, False, True]]


def test_lp_reg_hand_value_on_selected_tokens():
    # one sequence, A = -1 on every token; rho = 1 without the quirk selects every token with logp < proxy
    logp = torch.log(torch.tensor([[0.1, 0.6]], dtype=F64)).requires_grad_(True)
    logp_old = torch.log(torch.tensor([[0.2, 0.5]], dtype=F64))
    proxy = torch.log(torch.tensor([[0.4, 0.5]], dtype=F64))
    mask = torch.ones(1, 2, dtype=torch.bool)
    state = State.from_batch(logp=logp, logp_old=logp_old, mask=mask, advantages=-torch.ones(1, 2, dtype=F64),
                             extras={"logp_proxy": proxy})
    out = (clip_ratio() >> lp_reg(0.02, rho=1.0, beta=0.5, strict_reference_quirk=False)).loss(state)
    values = out.state.parts["policy"].values.detach()
    d = math.log(0.4 / 0.1)
    # token 0 (pi 0.1 < proxy 0.4): unclipped -A r + beta k3; token 1 (pi 0.6 > 0.5): the clipped term
    assert float(values[0, 0]) == pytest.approx(0.5 + 0.5 * (math.exp(d) - d - 1), abs=1e-12)
    assert float(values[0, 1]) == pytest.approx(1.2, abs=1e-12)  # max(-A r, -A clip(r)) = max(1.2, 1.2)
    assert float(out.metrics["lp_reg/selected_count"]) == 1


def test_lp_reg_penalty_gradient_raises_logp_of_selected_tokens():
    batch = _lp_batch(seed=7)
    term = lp_reg(0.02, rho=1.0, strict_reference_quirk=False)
    with_penalty = Objective(grpo >> term)(**batch)
    selected = (with_penalty.state.parts["policy"].values != Objective(grpo)(**batch).state.parts["policy"].values)
    assert selected.any()
    with_penalty.loss.backward()
    grad_with = batch["logp"].grad.clone()
    batch["logp"].grad = None
    Objective(grpo >> lp_reg(0.02, rho=1.0, beta=0.0, strict_reference_quirk=False))(**batch).loss.backward()
    penalty_grad = grad_with - batch["logp"].grad
    assert (penalty_grad[selected] < 0).all()  # gradient descent raises logp there
    assert (penalty_grad[~selected] == 0).all()


def test_lp_reg_proxy_from_the_old_view_equals_the_precomputed_proxy():
    batch = _lp_batch(seed=3, vocab=True)
    view = batch["extras"]["vocab_old"]
    proxy = view.proxy_logp(batch["extras"]["tokens"], 0.3, "minp", mask=batch["mask"])
    term = lp_reg(0.3, rho=1.0, strict_reference_quirk=False)
    precomputed = {**batch, "extras": {**batch["extras"], "logp_proxy": proxy}}
    from_view = {**batch, "extras": {k: v for k, v in batch["extras"].items() if k != "logp_proxy"}}
    a, b = Objective(grpo >> term)(**precomputed), Objective(grpo >> term)(**from_view)
    torch.testing.assert_close(a.loss, b.loss)
    assert float(a.metrics["lp_reg/selected_count"]) > 0


def test_lp_reg_forward_full_matches_the_loop_reference_on_selected_tokens():
    batch = _lp_batch(seed=11, vocab=True)
    old = batch["extras"]["vocab_old"]
    old_logits = old._tensors[0].double()  # the 5-token logits behind the test view
    top = torch.topk(torch.log_softmax(old_logits, -1), 5, dim=-1)
    batch["extras"]["proxy_topk"] = TopK(top.values, top.indices)
    term = lp_reg(0.3, rho=1.0, strict_reference_quirk=False, kl="forward_full", beta=0.7)
    out = Objective(grpo >> term)(**batch)
    base = Objective(grpo >> lp_reg(0.3, rho=1.0, strict_reference_quirk=False, beta=0.0))(**batch)
    selected = out.state.parts["policy"].values != base.state.parts["policy"].values
    # reference: KL(proxy || pi) with the proxy the min-p filtered, renormalised old policy
    probs_old = torch.softmax(old_logits, -1)
    keep = probs_old >= 0.3 * probs_old.max(-1, keepdim=True).values
    proxy = torch.where(keep, probs_old, torch.zeros((), dtype=F64))
    proxy = proxy / proxy.sum(-1, keepdim=True)
    log_pi = torch.log_softmax(batch["vocab"]._tensors[0].double(), -1)
    kl = (torch.xlogy(proxy, proxy) - proxy * log_pi).sum(-1)
    diff = (out.state.parts["policy"].values - base.state.parts["policy"].values).double()
    assert selected.any()
    torch.testing.assert_close(diff[selected], 0.7 * kl[selected], atol=1e-5, rtol=1e-5)


def test_lp_reg_proxy_topk_filter():
    logprobs = torch.log(torch.tensor([[[0.5, 0.3, 0.005, 0.004]]]))
    top = lp_reg_proxy_topk(TopK(logprobs, torch.arange(4)[None, None]), 0.02, "minp")
    assert top.logprobs[0, 0, :2].tolist() == pytest.approx(logprobs[0, 0, :2].tolist())
    assert top.logprobs[0, 0, 2:].tolist() == [-1e4, -1e4]
    fixed = lp_reg_proxy_topk(TopK(logprobs, torch.arange(4)[None, None]), 0.4, "fixed")
    assert fixed.logprobs[0, 0, 0] == logprobs[0, 0, 0] and (fixed.logprobs[0, 0, 1:] == -1e4).all()
    # nothing reaches 0.9: the reference's proxy is uniform; a top-k holds it over its k ids
    fixed = lp_reg_proxy_topk(TopK(logprobs, torch.arange(4)[None, None]), 0.9, "fixed")
    assert fixed.logprobs[0, 0].tolist() == [0.0] * 4


def test_lp_reg_order_and_bad_input():
    with pytest.raises(RlobjBuildError, match="lp_reg"):
        lp_reg(0.02) >> grpo
    grpo >> lp_reg(0.02)  # the working order
    with pytest.raises(RlobjInputError, match="lp_reg.tau"):
        lp_reg(1.5)
    with pytest.raises(RlobjInputError, match="lp_reg.rho"):
        lp_reg(0.02, rho=-0.1)
    with pytest.raises(RlobjInputError, match="lp_reg.kl"):
        lp_reg(0.02, kl="reverse")
    with pytest.raises(RlobjInputError, match="selection_scope"):
        lp_reg(0.02, selection_scope="global")
    batch = _lp_batch(seed=0)
    del batch["extras"]["logp_proxy"]
    with pytest.raises(RlobjInputError, match="extras\\['logp_proxy'\\].*extras\\['vocab_old'\\]"):
        Objective(grpo >> lp_reg(0.02))(**batch)
