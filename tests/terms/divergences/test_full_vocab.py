"""Full-vocabulary divergences (forward/reverse KL, JS, f-divergences: rlobj/terms/divergences/
full_vocab.py). DPH-RL's divergence is in test_dph.py; the allocation trace of every
full-vocabulary term in tests/terms/test_vocab_terms.py.

Layers of DESIGN.md s.7: hand values on a 2-3 token vocabulary; a slow loop reference (explicit
softmax over the whole vocabulary in float64, one token at a time) compared on Hypothesis
inputs (shapes, chunk sizes that do not divide the tokens, masks, temperatures, fp32/bf16,
views from hidden states or logits); gradients against the reference and gradcheck; the
properties of the spec; bad input.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from terms._vocab_batches import _lp_batch
from terms.divergences._full_vocab_refs import F64, LOG2, SETTINGS, logit_pairs, loop_divergence

from rlobj import (
    Objective,
    State,
    f_divergence,
    forward_kl,
    grpo,
    js_divergence,
    reverse_kl,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import TopK, VocabView
from rlobj.terms import f_generator


def torch_reference(logits, other_logits, mask, kind, temperature=1.0):
    """The same in differentiable float64 torch ops (for gradients)."""
    log_p = torch.log_softmax(logits.double() / temperature, -1)
    log_q = torch.log_softmax(other_logits.double() / temperature, -1)
    p, q = log_p.exp(), log_q.exp()
    if kind == "forward":
        value = (q * (log_q - log_p)).sum(-1)
    elif kind == "reverse":
        value = (p * (log_p - log_q)).sum(-1)
    elif kind == "js":
        log_m = torch.logaddexp(log_p, log_q) - LOG2
        value = 0.5 * (p * (log_p - log_m)).sum(-1) + 0.5 * (q * (log_q - log_m)).sum(-1)
    else:
        value = (q * f_generator(kind)((log_p - log_q).exp())).sum(-1)
    return torch.where(mask, value, torch.zeros((), dtype=F64))


TERMS = {
    "forward": lambda beta: forward_kl(beta),
    "reverse": lambda beta: reverse_kl(beta),
    "js": lambda beta: js_divergence(beta),
    "kl": lambda beta: f_divergence("kl", beta),
    "reverse_kl": lambda beta: f_divergence("reverse_kl", beta),
    "hellinger": lambda beta: f_divergence("hellinger", beta),
    "chi2": lambda beta: f_divergence("chi2", beta),
    "alpha:0.2": lambda beta: f_divergence("alpha:0.2", beta),
    "alpha:-0.5": lambda beta: f_divergence("alpha:-0.5", beta),
}
PART = {"forward": "kl_ref_forward_full", "reverse": "kl_ref_reverse_full", "js": "js_ref_full"}


def state_for(view, mask, tokens, **extras):
    logp = view.logp(tokens, mask=mask)
    return State.from_batch(logp=logp, mask=mask, vocab=view, extras=extras)


def run_term(term, logits, other_logits, mask, temperature=1.0, chunk_size=None):
    tokens = torch.zeros(mask.shape, dtype=torch.long)
    view = VocabView.from_logits(logits, temperature, chunk_size)
    other = VocabView.from_logits(other_logits, temperature, chunk_size)
    return term(state_for(view, mask, tokens, vocab_ref=other))


def part_of(state, kind):
    return state.parts[PART.get(kind, "f_ref_full")]


# ------------------------------------------------------------------------------------------
# hand values
# ------------------------------------------------------------------------------------------


def two_token_logits(p, q):
    """[1, 1, 2] logits of the distributions (p, 1-p) and (q, 1-q)."""
    return (torch.tensor([[[math.log(p), math.log(1 - p)]]]), torch.tensor([[[math.log(q), math.log(1 - q)]]]))


def test_hand_values_on_a_two_token_vocabulary():
    # pi = (0.5, 0.5), ref = (0.25, 0.75)
    logits, ref_logits = two_token_logits(0.5, 0.25)
    mask = torch.ones(1, 1, dtype=torch.bool)
    forward = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)  # 0.130812
    reverse = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.143841
    m = (0.375, 0.625)
    js = 0.5 * (0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])) + \
        0.5 * (0.25 * math.log(0.25 / m[0]) + 0.75 * math.log(0.75 / m[1]))  # 0.033822
    assert forward == pytest.approx(0.130812, abs=1e-6) and reverse == pytest.approx(0.143841, abs=1e-6)
    assert js == pytest.approx(0.033822, abs=1e-6)
    for kind, expected in (("forward", forward), ("reverse", reverse), ("js", js), ("kl", reverse),
                           ("reverse_kl", forward), ("js_gen", 2 * js)):
        term = TERMS["js" if kind == "js_gen" else kind](0.5) if kind != "js_gen" else f_divergence("js", 0.5)
        out = run_term(term, logits, ref_logits, mask)
        name = PART.get(kind, "f_ref_full")
        assert float(out.parts[name].values[0, 0]) == pytest.approx(0.5 * expected, abs=1e-6), kind
    # the whole objective: token mean of beta * KL
    loss = forward_kl(0.5).loss(state_for(VocabView.from_logits(logits), mask, torch.zeros(1, 1, dtype=torch.long),
                                          vocab_ref=VocabView.from_logits(ref_logits))).loss
    assert float(loss) == pytest.approx(0.5 * forward, abs=1e-6)


def test_hand_values_of_the_generators():
    u = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    assert f_generator("kl")(u).tolist() == pytest.approx([0.5 * math.log(0.5), 0.0, 2 * math.log(2)])
    assert f_generator("reverse_kl")(u).tolist() == pytest.approx([-0.5 - math.log(0.5), 0.0, 1 - math.log(2)])
    assert f_generator("js")(u).tolist() == pytest.approx(
        [0.5 * math.log(0.5) - 1.5 * math.log(0.75), 0.0, 2 * math.log(2) - 3 * math.log(1.5)])
    assert f_generator("hellinger")(u).tolist() == pytest.approx([(math.sqrt(0.5) - 1) ** 2, 0.0, (math.sqrt(2) - 1) ** 2])
    assert f_generator("chi2")(u).tolist() == pytest.approx([0.25, 0.0, 1.0])
    a = 0.2
    assert f_generator("alpha:0.2")(u).tolist() == pytest.approx(
        [(x ** (1 - a) - (1 - a) * x - a) / (a * (a - 1)) for x in (0.5, 1.0, 2.0)])



# ------------------------------------------------------------------------------------------
# the slow loop reference on Hypothesis inputs
# ------------------------------------------------------------------------------------------


@st.composite
def vocab_cases(draw):
    batch, seq, vocab = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(2, 9))
    hidden = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, seq, generator=g) < 0.7
    mask[0, 0] = True
    return {
        "hidden": torch.randn(batch, seq, hidden, generator=g),
        "weight": torch.randn(vocab, hidden, generator=g),
        "ref_hidden": torch.randn(batch, seq, hidden, generator=g),
        "mask": mask,
        "chunk": draw(st.sampled_from([None, 1, 2, 3, 7])),
        "vocab_chunk": draw(st.sampled_from([None, 2, 3])),
        "temperature": draw(st.sampled_from([0.7, 1.0, 1.5])),
        "dtype": draw(st.sampled_from([torch.float32, torch.bfloat16])),
        "from_hidden": draw(st.booleans()),
        "kind": draw(st.sampled_from(sorted(TERMS))),
    }


def build_views(case, requires_grad=False):
    dtype, temp = case["dtype"], case["temperature"]
    hidden = case["hidden"].detach().to(dtype).clone().requires_grad_(requires_grad)
    weight, ref_hidden = case["weight"].to(dtype), case["ref_hidden"].to(dtype)
    chunks = {"chunk_size": case["chunk"], "vocab_chunk_size": case["vocab_chunk"]}
    if case["from_hidden"]:
        view = VocabView.from_hidden(hidden, weight, temperature=temp, **chunks)
        other = VocabView.from_hidden(ref_hidden, weight, temperature=temp, **chunks)
    else:
        view = VocabView.from_logits(hidden @ weight.T, temp, **chunks)
        other = VocabView.from_logits(ref_hidden @ weight.T, temp, **chunks)
    # the logits the views see (bf16 products are rounded to bf16, as in a plain lm_head)
    logits = (hidden.detach() @ weight.T).double()
    ref_logits = (ref_hidden @ weight.T).double()
    return hidden, view, other, logits, ref_logits


@SETTINGS
@given(case=vocab_cases())
def test_terms_match_the_loop_reference(case):
    _, view, other, logits, ref_logits = build_views(case)
    mask, kind = case["mask"], case["kind"]
    beta = 0.3
    tokens = torch.zeros(mask.shape, dtype=torch.long)
    out = TERMS[kind](beta)(state_for(view, mask, tokens, vocab_ref=other))
    part = part_of(out, kind)
    expected = beta * loop_divergence(logits, ref_logits, mask, kind, case["temperature"])
    tol = 1e-4 if case["dtype"] == torch.float32 else 1e-2
    torch.testing.assert_close(part.values.double(), expected, atol=tol, rtol=tol)
    assert part.mask.equal(mask)


@SETTINGS
@given(case=vocab_cases())
def test_gradients_match_the_reference(case):
    case = {**case, "dtype": torch.float32}
    hidden, view, other, _, _ = build_views(case, requires_grad=True)
    mask, kind = case["mask"], case["kind"]
    tokens = torch.zeros(mask.shape, dtype=torch.long)
    out = TERMS[kind](1.0)(state_for(view, mask, tokens, vocab_ref=other))
    weights = torch.linspace(0.5, 1.5, mask.numel()).view(mask.shape)
    (part_of(out, kind).values * weights).sum().backward()
    reference_hidden = case["hidden"].detach().double().requires_grad_(True)
    value = torch_reference(reference_hidden @ case["weight"].double().T,
                            case["ref_hidden"].double() @ case["weight"].double().T, mask, kind,
                            case["temperature"])
    (value * weights.double()).sum().backward()
    # float32 chunks vs float64: chi2 and alpha gradients reach ~1e2 at large ratios
    torch.testing.assert_close(hidden.grad.double(), reference_hidden.grad, atol=2e-4, rtol=2e-3)


@pytest.mark.parametrize("kind", sorted(TERMS))
def test_gradcheck_float64(kind):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, generator=g, dtype=F64, requires_grad=True)
    ref_logits = torch.randn(2, 3, 4, generator=g, dtype=F64)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    tokens = torch.zeros(2, 3, dtype=torch.long)

    def fn(x):
        view = VocabView.from_logits(x, 1.3, chunk_size=2)
        out = TERMS[kind](0.7)(state_for(view, mask, tokens, vocab_ref=VocabView.from_logits(ref_logits, 1.3)))
        return part_of(out, kind).values

    assert torch.autograd.gradcheck(fn, (logits,), eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------------


@SETTINGS
@given(pair=logit_pairs())
def test_divergence_properties(pair):
    logits, ref_logits, mask = pair

    def values(kind, a, b):
        return part_of(run_term(TERMS[kind](1.0), a, b, mask), kind).values

    for kind in ("forward", "reverse", "js"):
        assert (values(kind, logits, ref_logits) >= -1e-12).all()
        torch.testing.assert_close(values(kind, logits, logits), torch.zeros(mask.shape, dtype=F64), atol=1e-12, rtol=0)
    js = values("js", logits, ref_logits)
    torch.testing.assert_close(js, values("js", ref_logits, logits))  # symmetric
    assert (js <= LOG2 + 1e-12).all()
    # f-divergence with the KL generators equals the KL terms; the JS generator gives 2 JS
    torch.testing.assert_close(values("kl", logits, ref_logits), values("reverse", logits, ref_logits))
    torch.testing.assert_close(values("reverse_kl", logits, ref_logits), values("forward", logits, ref_logits))
    torch.testing.assert_close(part_of(run_term(f_divergence("js", 1.0), logits, ref_logits, mask), "f").values, 2 * js)


def test_forward_kl_against_a_stored_top_k_equals_the_truncated_reference():
    g = torch.Generator().manual_seed(3)
    logits, ref_logits = torch.randn(2, 3, 6, generator=g, dtype=F64), torch.randn(2, 3, 6, generator=g, dtype=F64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    # the top-6 of 6 is the whole distribution: the same value as the view
    top = torch.topk(torch.log_softmax(ref_logits, -1), 6, dim=-1)
    view = VocabView.from_logits(logits)
    out = forward_kl(1.0)(state_for(view, mask, torch.zeros(2, 3, dtype=torch.long), vocab_ref=TopK(top.values, top.indices)))
    torch.testing.assert_close(out.parts["kl_ref_forward_full"].values, loop_divergence(logits, ref_logits, mask, "forward"))
    with pytest.raises(RlobjInputError, match="TopK only supports forward_kl"):
        reverse_kl(1.0)(state_for(view, mask, torch.zeros(2, 3, dtype=torch.long), vocab_ref=TopK(top.values, top.indices)))


def test_against_init_reads_vocab_init_and_coexists_with_the_sampled_kl():
    from rlobj import k3_kl

    batch = _lp_batch(seed=4, vocab=True)
    objective = grpo >> k3_kl(0.01) >> forward_kl(0.01) >> reverse_kl(0.01, against="init")
    out = Objective(objective)(**batch)
    assert {"loss/kl_ref", "loss/kl_ref_forward_full", "loss/kl_init_reverse_full"} <= set(out.metrics)
    assert "kl/ref_forward_full" in out.metrics and "kl/init_reverse_full" in out.metrics


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------


def test_missing_views_and_bad_arguments():
    batch = _lp_batch(seed=0)
    for term in (forward_kl(), reverse_kl(), js_divergence(), f_divergence()):
        with pytest.raises(RlobjInputError, match="reads 'vocab'"):
            Objective(grpo >> term)(**batch)
    batch = _lp_batch(seed=0, vocab=True)
    del batch["extras"]["vocab_ref"]
    with pytest.raises(RlobjInputError, match="extras\\['vocab_ref'\\]"):
        Objective(grpo >> forward_kl())(**batch)
    batch = _lp_batch(seed=0, vocab=True)
    batch["extras"]["vocab_ref"] = VocabView.from_logits(torch.randn(2, 2, 5))
    with pytest.raises(RlobjInputError, match="expected a view of shape"):
        Objective(grpo >> js_divergence())(**batch)
    with pytest.raises(RlobjInputError, match="forward_kl.against"):
        forward_kl(0.1, against="old")
    with pytest.raises(RlobjInputError, match="generator"):
        f_divergence("tv")
    with pytest.raises(RlobjInputError, match="generator"):
        f_divergence("alpha:1")
    with pytest.raises(RlobjInputError, match="beta"):
        reverse_kl(-1.0)
