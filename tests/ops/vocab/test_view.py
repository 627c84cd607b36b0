"""VocabView (rlobj/ops/vocab/view.py) and its queries: values and gradients against a float64 full-logits
reference, properties, errors.

The reference builds the whole ``[tokens, vocab]`` logits in float64 and applies each formula
directly (plain loops for the sort-based and filtered quantities).
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import (
    JS,
    KL,
    Entropy,
    FDivergence,
    LogProb,
    TopK,
    TopKMask,
    TopPMask,
    VocabView,
)
from rlobj.terms.regularizers import ProxyLogProb, TopPEntropy

SETTINGS = settings(max_examples=25, derandomize=True)


# ------------------------------------------------------------------------------------------------
# float64 reference on full logits
# ------------------------------------------------------------------------------------------------


def ref_logits(hidden, weight, bias=None, temperature=1.0, softcap=None):
    z = hidden.double() @ weight.double().T
    if bias is not None:
        z = z + bias.double()
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z / temperature


def ref_logp(z, tokens):
    return torch.log_softmax(z, -1).gather(-1, tokens.long()[..., None])[..., 0]


def ref_entropy(z):
    lp = torch.log_softmax(z, -1)
    return -(lp.exp() * lp).sum(-1)


def ref_kl(z_p, z_q):  # KL(P || Q)
    lp, lq = torch.log_softmax(z_p, -1), torch.log_softmax(z_q, -1)
    return (lp.exp() * (lp - lq)).sum(-1)


def ref_js(z_p, z_q):
    p, q = torch.softmax(z_p, -1), torch.softmax(z_q, -1)
    m = (p + q) / 2
    return 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)


def ref_top_p_entropy(z, p):
    """Plain loop: sort, keep the prefix with cumulative probability strictly below p."""
    probs = torch.softmax(z, -1)
    out = torch.zeros(probs.shape[:-1], dtype=z.dtype)
    rows = probs.reshape(-1, probs.shape[-1])
    flat = out.reshape(-1)
    for i in range(rows.shape[0]):
        values = sorted(rows[i].tolist(), reverse=True)
        kept, total = [], 0.0
        for value in values:
            total += value
            if total < p:
                kept.append(value)
            else:
                break
        mass = sum(kept)
        flat[i] = -sum((v / mass) * math.log(v / mass) for v in kept) if kept else 0.0
    return out


def ref_top_p_entropy_torch(z, p):
    """Differentiable float64 version of the same rule (for gradients)."""
    probs = torch.softmax(z, -1)
    sorted_p, order = torch.sort(probs.detach(), -1, descending=True)
    keep_sorted = sorted_p.cumsum(-1) < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    mass = kept.sum(-1, keepdim=True)
    q = kept / mass.clamp_min(1e-300)
    return -torch.where(keep, q * q.clamp_min(1e-300).log(), torch.zeros_like(q)).sum(-1)


def ref_proxy(z, tokens, kappa, mode, filtered=-1e4, temperature=1.0):
    """Plain loop over the vocabulary of every position: kept set at temperature 1, values
    renormalised at ``temperature``; uniform when ``"fixed"`` keeps nothing (Lp-Reg-dev)."""
    probs = torch.softmax(z, -1)
    out = torch.zeros(probs.shape[:-1], dtype=z.dtype)
    flat_p = probs.reshape(-1, probs.shape[-1])
    flat_t = tokens.reshape(-1)
    flat = out.reshape(-1)
    for i in range(flat_p.shape[0]):
        row = flat_p[i].tolist()
        top = max(row)
        limit = kappa * top if mode == "minp" else kappa
        kept = [v for v in range(len(row)) if row[v] >= limit]
        token = int(flat_t[i])
        if not kept:
            flat[i] = -math.log(len(row))
            continue
        mass = sum(row[v] ** (1 / temperature) for v in kept)
        flat[i] = math.log(row[token] ** (1 / temperature) / mass) if token in kept else filtered
    return out


def ref_top_k_mask(z, tokens, k):
    tok = z.gather(-1, tokens.long()[..., None])
    return (z > tok).sum(-1) < k


def ref_top_p_mask(z, tokens, p):
    probs = torch.softmax(z, -1)
    tok = z.gather(-1, tokens.long()[..., None])
    above = torch.where(z > tok, probs, torch.zeros_like(probs)).sum(-1)
    return above + probs.gather(-1, tokens.long()[..., None])[..., 0] < p


# ------------------------------------------------------------------------------------------------
# Hypothesis cases
# ------------------------------------------------------------------------------------------------


@st.composite
def cases(draw, dtype=torch.float64):
    batch = draw(st.integers(1, 3))
    seq = draw(st.integers(1, 5))
    hidden_size = draw(st.integers(1, 6))
    vocab = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.5, 1.0, 2.0]))
    hidden = (torch.randn(batch, seq, hidden_size, generator=gen) * scale).to(dtype)
    weight = torch.randn(vocab, hidden_size, generator=gen).to(dtype)
    bias = torch.randn(vocab, generator=gen).to(dtype) if draw(st.booleans()) else None
    other_hidden = torch.randn(batch, seq, hidden_size, generator=gen).to(dtype)
    other_weight = torch.randn(vocab, hidden_size, generator=gen).to(dtype)
    tokens = torch.randint(0, vocab, (batch, seq), generator=gen)
    mask = (torch.rand(batch, seq, generator=gen) < 0.7) if draw(st.booleans()) else None
    return dict(
        hidden=hidden,
        weight=weight,
        bias=bias,
        other_hidden=other_hidden,
        other_weight=other_weight,
        tokens=tokens,
        mask=mask,
        temperature=draw(st.sampled_from([1.0, 0.6, 1.7])),
        softcap=draw(st.sampled_from([None, None, 2.5])),
        chunk_size=draw(st.one_of(st.none(), st.integers(1, 7))),
        vocab_chunk_size=draw(st.one_of(st.none(), st.integers(1, vocab))),
        upstream=torch.randn(batch, seq, generator=gen, dtype=torch.float64),
    )


def build(case, *, grad=True):
    leaves = [case["hidden"], case["weight"]] + ([case["bias"]] if case["bias"] is not None else [])
    leaves = [t.clone().requires_grad_(grad) for t in leaves]
    bias = leaves[2] if len(leaves) == 3 else None
    view = VocabView.from_hidden(
        leaves[0],
        leaves[1],
        bias,
        temperature=case["temperature"],
        softcap=case["softcap"],
        chunk_size=case["chunk_size"],
        vocab_chunk_size=case["vocab_chunk_size"],
    )
    other = VocabView.from_hidden(
        case["other_hidden"],
        case["other_weight"],
        chunk_size=case["chunk_size"],
        vocab_chunk_size=case["vocab_chunk_size"],
    )
    return view, other, leaves


def reference_inputs(case, leaves):
    bias = leaves[2] if len(leaves) == 3 else None
    z = ref_logits(leaves[0], leaves[1], bias, case["temperature"], case["softcap"])
    z_other = ref_logits(case["other_hidden"], case["other_weight"])
    return z, z_other


def masked(values, mask):
    if mask is None:
        return values
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype))


DIFFERENTIABLE = {
    "logp": (lambda v, o, c: v.logp(c["tokens"], c["mask"]), lambda z, zo, c: ref_logp(z, c["tokens"])),
    "entropy": (lambda v, o, c: v.entropy(c["mask"]), lambda z, zo, c: ref_entropy(z)),
    "kl_forward": (lambda v, o, c: v.kl(o, "forward", c["mask"]), lambda z, zo, c: ref_kl(zo, z)),
    "kl_reverse": (lambda v, o, c: v.kl(o, "reverse", c["mask"]), lambda z, zo, c: ref_kl(z, zo)),
    "js": (lambda v, o, c: v.js(o, c["mask"]), lambda z, zo, c: ref_js(z, zo)),
    "f_div_js": (
        lambda v, o, c: v.f_divergence(
            o, lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2), c["mask"]
        ),
        lambda z, zo, c: 2 * ref_js(z, zo),
    ),
    "top_p_entropy": (
        lambda v, o, c: v.top_p_entropy(0.75, c["mask"]),
        lambda z, zo, c: ref_top_p_entropy_torch(z, 0.75),
    ),
}


def check_against_reference(case, name, rtol, atol, grad_rtol, grad_atol):
    method, reference = DIFFERENTIABLE[name]
    view, other, leaves = build(case)
    out = method(view, other, case)
    assert out.shape == case["tokens"].shape
    assert out.dtype == (torch.float64 if case["hidden"].dtype == torch.float64 else torch.float32)
    ref_leaves = [t.detach().double().requires_grad_(True) for t in leaves]
    z, z_other = reference_inputs(case, ref_leaves)
    expected = masked(reference(z, z_other, case), case["mask"])
    torch.testing.assert_close(out.double(), expected, rtol=rtol, atol=atol)
    upstream = case["upstream"]
    grads = torch.autograd.grad((out.double() * upstream).sum(), leaves)
    ref_grads = torch.autograd.grad((expected * upstream).sum(), ref_leaves)
    for got, want in zip(grads, ref_grads, strict=True):
        assert got.dtype == case["hidden"].dtype
        torch.testing.assert_close(got.double(), want, rtol=grad_rtol, atol=grad_atol)


# ------------------------------------------------------------------------------------------------
# values and gradients vs the reference
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
@SETTINGS
@given(case=cases())
def test_float64_values_and_grads_match_reference(name, case):
    check_against_reference(case, name, 1e-9, 1e-10, 1e-8, 1e-9)


@pytest.mark.parametrize("name", ["logp", "entropy", "kl_reverse", "js"])
@settings(max_examples=10, derandomize=True)
@given(case=cases(dtype=torch.float32))
def test_float32_values_and_grads_match_reference(name, case):
    check_against_reference(case, name, 1e-4, 2e-5, 1e-3, 1e-4)


@pytest.mark.parametrize("name", ["logp", "entropy", "kl_forward"])
@settings(max_examples=8, derandomize=True)
@given(case=cases(dtype=torch.bfloat16))
def test_bfloat16_accumulates_in_float32(name, case):
    # bf16 products round the logits to 8 bits of mantissa: compare loosely
    check_against_reference(case, name, 5e-2, 5e-2, 1e-1, 1e-1)


@SETTINGS
@given(case=cases())
def test_non_differentiable_queries_match_plain_loop_reference(case):
    view, _, leaves = build(case, grad=False)
    z, _ = reference_inputs(case, leaves)
    tokens, mask = case["tokens"], case["mask"]
    for kappa, mode, temperature in ((0.02, "minp", 1.0), (0.3, "minp", 0.7), (0.15, "fixed", 1.0),
                                     (0.97, "fixed", 1.3)):
        got = view.proxy_logp(tokens, kappa, mode, mask, temperature=temperature)
        torch.testing.assert_close(got, masked(ref_proxy(z, tokens, kappa, mode, temperature=temperature), mask))
    for k in (1, 2, 5):
        want = ref_top_k_mask(z, tokens, k)
        expected = want if mask is None else want & mask
        assert torch.equal(view.top_k_mask(tokens, k, mask), expected)
    for p in (0.3, 0.8, 0.95):  # p = 1 puts the last token exactly on the boundary
        want = ref_top_p_mask(z, tokens, p)
        expected = want if mask is None else want & mask
        assert torch.equal(view.top_p_mask(tokens, p, mask), expected)
    top_p = view.top_p_entropy(0.6, mask)
    torch.testing.assert_close(top_p, masked(ref_top_p_entropy(z, 0.6), mask))


@SETTINGS
@given(case=cases())
def test_fused_evaluate_equals_separate_calls_and_sums_grads(case):
    view, other, leaves = build(case)
    tokens, mask = case["tokens"], case["mask"]
    queries = (
        LogProb(tokens),
        Entropy(),
        KL(other, "forward"),
        ProxyLogProb(tokens, 0.1),
        TopKMask(tokens, 2),
        TopPMask(tokens, 0.7),
    )
    fused = view.evaluate(*queries, mask=mask)
    separate = [view.evaluate(q, mask=mask)[0] for q in queries]
    for a, b in zip(fused, separate, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    loss = fused[0].sum() + 0.3 * fused[1].sum() - 2.0 * fused[2].sum()
    grads = torch.autograd.grad(loss, leaves)
    loss_separate = separate[0].sum() + 0.3 * separate[1].sum() - 2.0 * separate[2].sum()
    want = torch.autograd.grad(loss_separate, leaves)
    for a, b in zip(grads, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(case=cases())
def test_from_logits_matches_reference_with_grads(case):
    z_raw = ref_logits(case["hidden"], case["weight"], case["bias"]).detach().requires_grad_(True)
    view = VocabView.from_logits(
        z_raw,
        temperature=case["temperature"],
        chunk_size=case["chunk_size"],
        vocab_chunk_size=case["vocab_chunk_size"],
    )
    other = VocabView.from_logits(ref_logits(case["other_hidden"], case["other_weight"]))
    tokens, mask, upstream = case["tokens"], case["mask"], case["upstream"]
    logp, entropy, kl, js = view.evaluate(
        LogProb(tokens), Entropy(), KL(other, "reverse"), JS(other), mask=mask
    )
    z_ref = z_raw.detach().clone().requires_grad_(True)
    z, z_other = z_ref / case["temperature"], other._tensors[0]
    expected = [ref_logp(z, tokens), ref_entropy(z), ref_kl(z, z_other), ref_js(z, z_other)]
    expected = [masked(e, mask) for e in expected]
    for got, want in zip((logp, entropy, kl, js), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    total = sum((g * upstream).sum() for g in (logp, entropy, kl, js))
    (grad,) = torch.autograd.grad(total, z_raw)
    (want,) = torch.autograd.grad(sum((e * upstream).sum() for e in expected), z_ref)
    torch.testing.assert_close(grad, want, rtol=1e-8, atol=1e-10)
    assert z_raw.grad is None  # the user's logits are not modified or accumulated into


@SETTINGS
@given(case=cases())
def test_kl_grads_flow_into_both_views(case):
    view, _, leaves = build(case)
    other_leaves = [case["other_hidden"].clone().requires_grad_(True),
                    case["other_weight"].clone().requires_grad_(True)]
    other = VocabView.from_hidden(*other_leaves, chunk_size=case["chunk_size"],
                                  vocab_chunk_size=case["vocab_chunk_size"])
    mask, upstream = case["mask"], case["upstream"]
    kl_f, kl_r, js = view.evaluate(KL(other, "forward"), KL(other, "reverse"), JS(other), mask=mask)
    loss = ((kl_f - 0.5 * kl_r + 2 * js) * upstream).sum()
    grads = torch.autograd.grad(loss, leaves + other_leaves)
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in leaves + other_leaves]
    bias = ref_leaves[2] if len(leaves) == 3 else None
    z = ref_logits(ref_leaves[0], ref_leaves[1], bias, case["temperature"], case["softcap"])
    z_other = ref_logits(ref_leaves[-2], ref_leaves[-1])
    ref = masked(ref_kl(z_other, z) - 0.5 * ref_kl(z, z_other) + 2 * ref_js(z, z_other), mask)
    want = torch.autograd.grad((ref * upstream).sum(), ref_leaves)
    for a, b in zip(grads, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


@SETTINGS
@given(case=cases(), k=st.integers(1, 4))
def test_kl_against_stored_top_k(case, k):
    view, _, leaves = build(case)
    vocab = case["weight"].shape[0]
    k = min(k, vocab)
    z, z_other = reference_inputs(case, [t.detach().double().requires_grad_(True) for t in leaves])
    top = torch.topk(torch.log_softmax(z_other, -1), k, dim=-1)
    stored = TopK(logprobs=top.values, indices=top.indices)
    got = view.kl(stored, "forward", case["mask"])
    # reference: the renormalised top-k distribution as a full-vocabulary distribution
    r = torch.zeros_like(z_other).scatter(-1, top.indices, torch.softmax(top.values, -1))
    log_pi = torch.log_softmax(z, -1)
    terms = torch.where(r > 0, r * (r.clamp_min(1e-300).log() - log_pi), torch.zeros_like(r))
    expected = masked(terms.sum(-1), case["mask"])
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
    grads = torch.autograd.grad((got * case["upstream"]).sum(), leaves)
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    z2, _ = reference_inputs(case, ref_leaves)
    ref2 = torch.where(r > 0, r * (r.clamp_min(1e-300).log() - torch.log_softmax(z2, -1)), 0.0)
    want = torch.autograd.grad((masked(ref2.sum(-1), case["mask"]) * case["upstream"]).sum(), ref_leaves)
    for a, b in zip(grads, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


def test_gradcheck_all_differentiable_queries_with_vocab_blocks():
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    weight = torch.randn(7, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    bias = torch.randn(7, dtype=torch.float64, generator=gen, requires_grad=True)
    other_hidden = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    other_weight = torch.randn(7, 4, dtype=torch.float64, generator=gen)
    tokens = torch.randint(0, 7, (2, 3), generator=gen)
    mask = torch.tensor([[True, False, True], [True, True, True]])

    def fn(h, w, b, oh):
        view = VocabView.from_hidden(h, w, b, temperature=0.8, softcap=3.0, chunk_size=2,
                                     vocab_chunk_size=3)
        other = VocabView.from_hidden(oh, other_weight, chunk_size=2, vocab_chunk_size=3)
        gen_fn = lambda u: (u ** 0.8 - 0.2 * u - 0.8) / (0.2 * -0.8)  # noqa: E731 alpha gen.
        return view.evaluate(LogProb(tokens), Entropy(), KL(other, "forward"),
                             KL(other, "reverse"), JS(other), FDivergence(other, gen_fn),
                             TopPEntropy(0.9), mask=mask)

    assert torch.autograd.gradcheck(fn, (hidden, weight, bias, other_hidden))


# ------------------------------------------------------------------------------------------------
# hand-computed values
# ------------------------------------------------------------------------------------------------


def test_hand_computed_values():
    # probabilities (0.5, 0.25, 0.125, 0.125) from logits log p
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64)
    view = VocabView.from_logits(probs.log().view(1, 1, 4))
    token = torch.tensor([[1]])
    assert view.logp(token).item() == pytest.approx(math.log(0.25))
    assert view.entropy().item() == pytest.approx(1.75 * math.log(2))
    # nucleus strictly below 0.8: cumulative 0.5, 0.75, 0.875 -> {0.5, 0.25} renormalised (2/3, 1/3)
    assert view.top_p_entropy(0.8).item() == pytest.approx(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
    # top-1 alone reaches p=0.5: empty nucleus, entropy 0
    assert view.top_p_entropy(0.5).item() == 0.0
    # min-p kappa=0.3: keep p >= 0.15 -> {0.5, 0.25}, token 1 has proxy 1/3; token 2 filtered
    assert view.proxy_logp(token, 0.3).item() == pytest.approx(math.log(1 / 3))
    assert view.proxy_logp(torch.tensor([[2]]), 0.3).item() == -1e4
    # fixed kappa=0.9: nothing reaches 0.9 -> every logit filtered, the reference's proxy is uniform
    assert view.proxy_logp(torch.tensor([[0]]), 0.9, mode="fixed").item() == pytest.approx(-math.log(4))
    assert view.proxy_logp(torch.tensor([[3]]), 0.9, mode="fixed").item() == pytest.approx(-math.log(4))
    # renormalised at temperature 0.5 on the set kept at temperature 1: {0.5, 0.25} -> (0.25, 0.0625)
    assert view.proxy_logp(token, 0.3, temperature=0.5).item() == pytest.approx(math.log(0.0625 / 0.3125))
    assert view.top_k_mask(token, 1).item() is False and view.top_k_mask(token, 2).item() is True
    assert view.top_p_mask(token, 0.8).item() is True and view.top_p_mask(token, 0.75).item() is False
    uniform = VocabView.from_logits(torch.zeros(1, 1, 4, dtype=torch.float64))
    # KL(uniform || p) = sum 1/4 log((1/4)/p) = log(1/4) - 1/4 sum log p
    expected = math.log(0.25) - 0.25 * float(probs.log().sum())
    assert view.kl(uniform, "forward").item() == pytest.approx(expected)


# ------------------------------------------------------------------------------------------------
# properties from the math
# ------------------------------------------------------------------------------------------------


@SETTINGS
@given(case=cases())
def test_divergence_properties(case):
    view, other, _ = build(case, grad=False)
    log2 = math.log(2)
    kl_f, kl_r, js, js_swapped, kl_self, js_self = (
        view.kl(other, "forward"), view.kl(other, "reverse"), view.js(other), other.js(view),
        view.kl(view, "reverse"), view.js(view),
    )
    assert bool((kl_f >= -1e-12).all() and (kl_r >= -1e-12).all())
    assert kl_self.abs().max() < 1e-12 and js_self.abs().max() < 1e-12
    torch.testing.assert_close(js, js_swapped, rtol=1e-10, atol=1e-12)
    assert bool((js >= -1e-12).all() and (js <= log2 + 1e-12).all())
    # f-divergence with KL generators equals the KL itself, in both directions
    kl_gen = view.f_divergence(other, lambda u: u * torch.log(u))
    reverse_gen = view.f_divergence(other, lambda u: u - torch.log(u) - 1)
    torch.testing.assert_close(kl_gen, kl_r, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(reverse_gen, kl_f, rtol=1e-9, atol=1e-10)


@SETTINGS
@given(case=cases(), kappa=st.floats(0.0, 1.0), mode=st.sampled_from(["minp", "fixed"]))
def test_proxy_is_a_distribution_with_no_mass_below_threshold(case, kappa, mode):
    view, _, leaves = build(case, grad=False)
    z, _ = reference_inputs(case, leaves)
    probs = torch.softmax(z, -1)
    vocab = probs.shape[-1]
    proxy = torch.stack(
        [view.proxy_logp(torch.full_like(case["tokens"], v), kappa, mode).exp() for v in range(vocab)],
        dim=-1,
    )
    proxy = torch.where(proxy > math.exp(-1e3), proxy, torch.zeros_like(proxy))  # -1e4 -> 0
    torch.testing.assert_close(proxy.sum(-1), torch.ones_like(proxy[..., 0]))
    top = probs.max(-1, keepdim=True).values
    limit = kappa * top if mode == "minp" else torch.full_like(top, kappa)
    below = probs < limit * (1 - 1e-9)
    survivors = (~below).any(-1, keepdim=True)
    assert bool((proxy[below & survivors] == 0).all())
    argmax = probs.argmax(-1, keepdim=True)
    assert bool((proxy.gather(-1, argmax) > 0).all())  # the argmax is always kept
    uniform = ~survivors.expand_as(proxy)  # nothing reaches kappa: the reference's uniform proxy
    torch.testing.assert_close(proxy[uniform], torch.full_like(proxy[uniform], 1 / vocab))
    proxy, probs = proxy[survivors[..., 0]], probs[survivors[..., 0]]
    kept = proxy > 0
    ratio = torch.where(kept, proxy / probs, torch.zeros_like(probs))
    constant = ratio.max(-1, keepdim=True).values
    assert bool((constant >= 1 - 1e-9).all())
    torch.testing.assert_close(torch.where(kept, ratio, constant).expand_as(ratio),
                               constant.expand_as(ratio))


@SETTINGS
@given(case=cases(), p=st.floats(0.05, 1.0))
def test_top_p_entropy_is_bounded_by_log_nucleus_size(case, p):
    view, _, leaves = build(case, grad=False)
    z, _ = reference_inputs(case, leaves)
    probs = torch.softmax(z, -1)
    sorted_p = torch.sort(probs, -1, descending=True).values
    size = (sorted_p.cumsum(-1) < p).sum(-1)
    entropy = view.top_p_entropy(p)
    assert bool((entropy >= -1e-12).all())
    bound = torch.where(size > 0, size.double().clamp_min(1).log(), torch.zeros_like(entropy))
    assert bool((entropy <= bound + 1e-9).all())
    assert bool((entropy[sorted_p[..., 0] >= p] == 0).all())


@SETTINGS
@given(case=cases())
def test_entropy_bounds_and_masked_positions(case):
    view, _, leaves = build(case)
    vocab = case["weight"].shape[0]
    mask = case["mask"]
    if mask is None:
        mask = torch.ones(case["tokens"].shape, dtype=torch.bool)
    entropy = view.entropy(mask)
    assert bool((entropy >= -1e-12).all() and (entropy <= math.log(vocab) + 1e-12).all())
    assert bool((entropy[~mask] == 0).all())
    (grad_hidden,) = torch.autograd.grad(entropy.sum(), leaves[0])
    assert bool((grad_hidden[~mask] == 0).all())


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------


def test_shape_annotations_are_checked_when_typechecks_are_on(monkeypatch):
    from jaxtyping import TypeCheckError

    monkeypatch.setenv("RLOBJ_TYPECHECK", "1")
    with pytest.raises(TypeCheckError):
        VocabView.from_hidden(torch.randn(2, 3, 4), torch.randn(5, 6))


def test_bad_input_errors_name_the_argument(monkeypatch):
    monkeypatch.setenv("RLOBJ_TYPECHECK", "0")  # the explicit checks, independent of jaxtyping
    hidden, weight = torch.randn(2, 3, 4), torch.randn(5, 4)
    view = VocabView.from_hidden(hidden, weight)
    tokens = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(RlobjInputError, match="weight: expected shape"):
        VocabView.from_hidden(torch.randn(2, 3, 4), torch.randn(5, 6), None)
    with pytest.raises(RlobjInputError, match="weight: expected the dtype"):
        VocabView.from_hidden(hidden, weight.double())
    with pytest.raises(RlobjInputError, match="bias: expected shape"):
        VocabView.from_hidden(hidden, weight, torch.zeros(4))
    with pytest.raises(RlobjInputError, match="temperature"):
        VocabView.from_hidden(hidden, weight, temperature=0.0)
    with pytest.raises(RlobjInputError, match="softcap"):
        VocabView.from_hidden(hidden, weight, softcap=-1.0)
    with pytest.raises(RlobjInputError, match="chunk_size"):
        VocabView.from_hidden(hidden, weight, chunk_size=0)
    with pytest.raises(RlobjInputError, match=r"tokens: expected ids in \[0, 5\)"):
        view.logp(tokens + 5)
    with pytest.raises(RlobjInputError, match="tokens: expected shape"):
        view.evaluate(LogProb(torch.zeros(3, 2, dtype=torch.long)))
    with pytest.raises(RlobjInputError, match="tokens: expected an integer"):
        view.evaluate(LogProb(torch.zeros(2, 3)))
    with pytest.raises(RlobjInputError, match="mask: expected a bool"):
        view.evaluate(Entropy(), mask=torch.ones(2, 3))
    with pytest.raises(RlobjInputError, match="mask: expected shape"):
        view.evaluate(Entropy(), mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(RlobjInputError, match="direction"):
        view.kl(view, "sideways")
    with pytest.raises(RlobjInputError, match="other: expected a view of shape"):
        view.kl(VocabView.from_logits(torch.randn(2, 3, 6)))
    with pytest.raises(RlobjInputError, match="other: expected a VocabView"):
        view.js(torch.randn(2, 3, 5))
    with pytest.raises(RlobjInputError, match="only direction='forward'"):
        view.kl(TopK(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2, dtype=torch.long)), "reverse")
    with pytest.raises(RlobjInputError, match="p: expected a value in"):
        view.top_p_entropy(0.0)
    with pytest.raises(RlobjInputError, match="kappa"):
        view.proxy_logp(tokens, 1.5)
    with pytest.raises(RlobjInputError, match="mode"):
        view.proxy_logp(tokens, 0.1, mode="soft")
    with pytest.raises(RlobjInputError, match="k: expected a positive int"):
        view.top_k_mask(tokens, 0)
    with pytest.raises(RlobjInputError, match="generator"):
        view.f_divergence(view, "kl")
    with pytest.raises(RlobjInputError, match="queries"):
        view.evaluate()
    with pytest.raises(RlobjInputError, match="logits: expected"):
        VocabView.from_logits(torch.zeros(2, 3, 4, dtype=torch.long))


def test_tokens_at_padding_positions_are_not_checked():
    view = VocabView.from_logits(torch.randn(1, 3, 4))
    tokens = torch.tensor([[1, -100, 2]])
    mask = torch.tensor([[True, False, True]])
    logp = view.logp(tokens, mask)
    assert logp[0, 1] == 0 and bool((logp[mask] < 0).all())
