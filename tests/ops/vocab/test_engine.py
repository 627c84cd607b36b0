"""The chunk engine (rlobj/ops/vocab/engine.py): every vocab query, chunked, equals the dense reference
(``rlobj.ops.vocab.dense``).

Hypothesis draws small views (from hidden states or logits, with bias, temperature, soft-cap,
mask) and each query is evaluated by the chunk engine under several tilings (whole rows, one
token x one vocabulary id, and a drawn one) and by :func:`dense_evaluate` on the whole float64
logits. Values must agree, and so must the gradients (the engine's analytic backward against
autograd through the dense formula); a finite-difference ``gradcheck`` covers the engine without
any reference. The term-side queries (Lp-Reg's proxy, SIREN's nucleus entropy) use the same
protocol and are checked the same way.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.ops import vocab as vq
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import (
    VocabQuery,
    VocabView,
    dense_evaluate,
)
from rlobj.terms.regularizers import ProxyLogProb, TopPEntropy, proxy_logp, top_p_entropy

SETTINGS = settings(max_examples=15, derandomize=True)


def js_generator(u):
    return u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2)


#: name -> query built from a case (``c``) and the other view (``o``)
QUERIES = {
    "logp": lambda c, o: vq.LogProb(c["tokens"]),
    "entropy": lambda c, o: vq.Entropy(),
    "kl_forward": lambda c, o: vq.KL(o, "forward"),
    "kl_reverse": lambda c, o: vq.KL(o, "reverse"),
    "kl_stored_topk": lambda c, o: vq.KL(vq.TopK(c["topk_logprobs"], c["topk_indices"]), "forward"),
    "js": lambda c, o: vq.JS(o),
    "f_divergence": lambda c, o: vq.FDivergence(o, js_generator),
    "top_k_mask": lambda c, o: vq.TopKMask(c["tokens"], c["k"]),
    "top_p_mask": lambda c, o: vq.TopPMask(c["tokens"], c["p"]),
    "proxy_minp": lambda c, o: ProxyLogProb(c["tokens"], c["kappa"], "minp", temperature=c["proxy_t"]),
    "proxy_fixed": lambda c, o: ProxyLogProb(c["tokens"], c["kappa"] / 4, "fixed"),
    "top_p_entropy": lambda c, o: TopPEntropy(c["p"], c["max_tokens"]),
}


@st.composite
def cases(draw):
    batch, seq = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    vocab, hidden_size = draw(st.integers(2, 12)), draw(st.integers(1, 5))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    k = min(vocab, draw(st.integers(1, 4)))
    return dict(
        from_logits=draw(st.booleans()),
        hidden=torch.randn(batch, seq, hidden_size, generator=gen, dtype=torch.float64) * scale,
        weight=torch.randn(vocab, hidden_size, generator=gen, dtype=torch.float64),
        bias=torch.randn(vocab, generator=gen, dtype=torch.float64) if draw(st.booleans()) else None,
        other_hidden=torch.randn(batch, seq, hidden_size, generator=gen, dtype=torch.float64),
        other_weight=torch.randn(vocab, hidden_size, generator=gen, dtype=torch.float64),
        tokens=torch.randint(0, vocab, (batch, seq), generator=gen),
        topk_logprobs=torch.randn(batch, seq, k, generator=gen, dtype=torch.float64),
        topk_indices=torch.rand(batch, seq, vocab, generator=gen).argsort(-1)[..., :k],
        mask=(torch.rand(batch, seq, generator=gen) < 0.7) if draw(st.booleans()) else None,
        temperature=draw(st.sampled_from([1.0, 0.6, 1.7])),
        softcap=draw(st.sampled_from([None, 2.5])),
        tilings=[(None, None), (1, 1), (draw(st.integers(1, 5)), draw(st.integers(1, vocab)))],
        k=draw(st.integers(1, 3)),
        p=draw(st.sampled_from([0.3, 0.6, 0.9])),
        kappa=draw(st.sampled_from([0.0, 0.05, 0.3, 1.0])),
        proxy_t=draw(st.sampled_from([1.0, 0.7])),
        max_tokens=draw(st.sampled_from([None, 1, 3])),
        upstream=torch.randn(batch, seq, generator=gen, dtype=torch.float64),
    )


def views(case, tiling):
    """Fresh leaves (requiring grad) and the view and other view over them, tiled as given."""
    chunk_size, vocab_chunk_size = tiling
    tiles = dict(chunk_size=chunk_size, vocab_chunk_size=vocab_chunk_size)
    other_leaves = [case["other_hidden"].clone().requires_grad_(True), case["other_weight"].clone().requires_grad_(True)]
    other = VocabView.from_hidden(*other_leaves, **tiles)
    if case["from_logits"]:
        logits = case["hidden"] @ case["weight"].T
        leaves = [logits.clone().requires_grad_(True)]
        view = VocabView.from_logits(leaves[0], temperature=case["temperature"], **tiles)
    else:
        leaves = [case["hidden"].clone().requires_grad_(True), case["weight"].clone().requires_grad_(True)]
        if case["bias"] is not None:
            leaves.append(case["bias"].clone().requires_grad_(True))
        view = VocabView.from_hidden(*leaves[:2], leaves[2] if len(leaves) == 3 else None,
                                     temperature=case["temperature"], softcap=case["softcap"], **tiles)
    return view, other, leaves + other_leaves


@pytest.mark.parametrize("name", sorted(QUERIES))
@SETTINGS
@given(case=cases())
def test_chunked_query_equals_the_dense_reference(name, case):
    for tiling in case["tilings"]:
        view, other, leaves = views(case, tiling)
        query = QUERIES[name](case, other)
        (chunked,) = view.evaluate(query, mask=case["mask"])
        (dense,) = dense_evaluate(view, query, mask=case["mask"])
        assert chunked.shape == dense.shape == case["tokens"].shape
        if dense.dtype == torch.bool:
            assert torch.equal(chunked, dense), (name, tiling)
            continue
        torch.testing.assert_close(chunked, dense, rtol=1e-9, atol=1e-9, msg=f"{name} {tiling}")
        if not query.differentiable:
            assert not chunked.requires_grad
            continue
        got = torch.autograd.grad((chunked * case["upstream"]).sum(), leaves, allow_unused=True)
        want = torch.autograd.grad((dense * case["upstream"]).sum(), leaves, allow_unused=True)
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            g = torch.zeros_like(leaves[index]) if g is None else g
            w = torch.zeros_like(leaves[index]) if w is None else w
            torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-9, msg=f"grad {index} of {name} {tiling}")


@pytest.mark.parametrize("name", ["logp", "entropy", "kl_forward", "kl_reverse", "kl_stored_topk",
                                  "js", "f_divergence", "top_p_entropy"])
def test_chunked_gradients_pass_gradcheck(name):
    """Finite differences against the engine's analytic backward (no reference involved)."""
    gen = torch.Generator().manual_seed(3)
    case = dict(tokens=torch.randint(0, 7, (2, 3), generator=gen),
                topk_logprobs=torch.randn(2, 3, 3, generator=gen, dtype=torch.float64),
                topk_indices=torch.rand(2, 3, 7, generator=gen).argsort(-1)[..., :3],
                p=0.9, max_tokens=None)
    hidden = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    other_hidden = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    other_weight = torch.randn(7, 4, generator=gen, dtype=torch.float64)

    def evaluate(hidden, weight, other_hidden):
        tiles = dict(chunk_size=2, vocab_chunk_size=3)
        view = VocabView.from_hidden(hidden, weight, temperature=0.8, softcap=3.0, **tiles)
        other = VocabView.from_hidden(other_hidden, other_weight, **tiles)
        return view.evaluate(QUERIES[name](case, other))[0]

    assert torch.autograd.gradcheck(evaluate, (hidden, weight, other_hidden), eps=1e-6, atol=1e-6)


def test_query_protocol_names_bad_ids_and_arguments():
    view = VocabView.from_logits(torch.randn(1, 2, 5))
    with pytest.raises(RlobjInputError, match="tokens: expected ids in"):
        view.evaluate(vq.LogProb(torch.tensor([[0, 5]])))
    with pytest.raises(RlobjInputError, match="other.indices: expected ids in"):
        view.evaluate(vq.KL(vq.TopK(torch.zeros(1, 2, 2), torch.tensor([[[0, 1], [2, 9]]]))))
    with pytest.raises(RlobjInputError, match="queries: expected LogProb, Entropy, KL"):
        view.evaluate(object())
    with pytest.raises(RlobjInputError, match="queries: expected at least one query"):
        dense_evaluate(view)


def test_the_paper_queries_live_beside_their_terms_and_the_old_names_still_work():
    import rlobj.ops.vocab as vocab

    assert issubclass(ProxyLogProb, VocabQuery) and issubclass(TopPEntropy, VocabQuery)
    assert ProxyLogProb.__module__ == "rlobj.terms.regularizers.lp_reg_proxy"
    assert TopPEntropy.__module__ == "rlobj.terms.regularizers.siren_entropy"
    assert "ProxyLogProb" not in vocab.__all__ and "TopPEntropy" not in vocab.__all__
    with pytest.warns(DeprecationWarning, match="rlobj.terms.regularizers.lp_reg_proxy.ProxyLogProb"):
        from rlobj.ops.vocab import ProxyLogProb as old_proxy
    with pytest.warns(DeprecationWarning, match="rlobj.terms.regularizers.siren_entropy.TopPEntropy"):
        from rlobj.ops.vocab import TopPEntropy as old_top_p
    assert old_proxy is ProxyLogProb and old_top_p is TopPEntropy
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        vocab.Nope  # noqa: B018
    view = VocabView.from_logits(torch.log(torch.tensor([[[0.5, 0.3, 0.19, 0.01]]])))
    tokens = torch.tensor([[1]])
    with pytest.warns(DeprecationWarning, match="VocabView.proxy_logp moved"):
        old_value = view.proxy_logp(tokens, 0.1)
    assert torch.equal(old_value, proxy_logp(view, tokens, 0.1))
    assert float(old_value) == pytest.approx(math.log(0.3 / 0.99))
    with pytest.warns(DeprecationWarning, match="VocabView.top_p_entropy moved"):
        old_entropy = view.top_p_entropy(0.9, max_tokens=2)
    assert torch.equal(old_entropy, top_p_entropy(view, 0.9, max_tokens=2))
