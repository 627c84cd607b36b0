"""No ``[tokens, vocab]`` float tensor is ever allocated by a VocabView built from hidden states.

Every op dispatched during forward and backward is traced with a ``TorchDispatchMode``; an output
counts as an allocation when its storage is not one of the op's inputs' storages (views and
in-place ops allocate nothing). The tracer is shown to catch a naive implementation.
"""


import pytest
import torch
from ops._allocation_tracer import AllocationTracer as TracerBase

from rlobj.ops import vocab as vq
from rlobj.ops.vocab import VocabView
from rlobj.terms.regularizers import ProxyLogProb, TopPEntropy

BATCH, SEQ, HIDDEN, VOCAB = 6, 16, 8, 64
TOKENS = BATCH * SEQ


class AllocationTracer(TracerBase):
    def full_vocab_float(self):
        """Float allocations with at least tokens x vocab elements."""
        return self.floats_of_at_least(TOKENS * VOCAB)


def make_inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(BATCH, SEQ, HIDDEN, generator=gen, requires_grad=True)
    weight = torch.randn(VOCAB, HIDDEN, generator=gen, requires_grad=True)
    bias = torch.randn(VOCAB, generator=gen, requires_grad=True)
    ref_hidden = torch.randn(BATCH, SEQ, HIDDEN, generator=gen)
    ref_weight = torch.randn(VOCAB, HIDDEN, generator=gen)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
    mask = torch.rand(BATCH, SEQ, generator=gen) < 0.9
    return hidden, weight, bias, ref_hidden, ref_weight, tokens, mask


def query_factories(ref, tokens):
    top = torch.topk(torch.randn(BATCH, SEQ, VOCAB).log_softmax(-1), 4, dim=-1)
    return {
        "logp": lambda: vq.LogProb(tokens),
        "entropy": lambda: vq.Entropy(),
        "top_p_entropy": lambda: TopPEntropy(0.8),
        "kl_forward": lambda: vq.KL(ref, "forward"),
        "kl_reverse": lambda: vq.KL(ref, "reverse"),
        "kl_top_k": lambda: vq.KL(vq.TopK(top.values, top.indices), "forward"),
        "js": lambda: vq.JS(ref),
        "f_divergence": lambda: vq.FDivergence(ref, lambda u: u - torch.log(u) - 1),
        "proxy_logp": lambda: ProxyLogProb(tokens, 0.02),
        "top_k_mask": lambda: vq.TopKMask(tokens, 5),
        "top_p_mask": lambda: vq.TopPMask(tokens, 0.9),
    }


def trace(view_kwargs, name):
    hidden, weight, bias, ref_hidden, ref_weight, tokens, mask = make_inputs()
    view = VocabView.from_hidden(hidden, weight, bias, temperature=0.9, **view_kwargs)
    ref = VocabView.from_hidden(ref_hidden, ref_weight, **view_kwargs)
    query = query_factories(ref, tokens)[name]()
    with AllocationTracer() as tracer:
        (out,) = view.evaluate(query, mask=mask)
        if out.requires_grad:
            out.sum().backward()
    return tracer, out


NAMES = sorted(query_factories(None, None))


@pytest.mark.parametrize("name", NAMES)
def test_no_tokens_by_vocab_allocation_with_explicit_chunks(name):
    tracer, out = trace({"chunk_size": 16}, name)
    assert tracer.records, "the tracer saw nothing: it is not tracing"
    assert tracer.full_vocab_float() == []
    # the largest float allocation is at most one chunk x vocab (or a weight-sized gradient)
    assert tracer.largest_float()[3] <= max(16 * VOCAB, VOCAB * HIDDEN)


@pytest.mark.parametrize("name", NAMES)
def test_no_tokens_by_vocab_allocation_with_automatic_chunks(name):
    tracer, _ = trace({"memory_budget": 24 * 1024}, name)
    assert tracer.full_vocab_float() == []


@pytest.mark.parametrize("name", ["logp", "entropy", "kl_forward", "js", "proxy_logp"])
def test_vocabulary_blocks_allocate_less_than_a_row_chunk(name):
    tracer, _ = trace({"chunk_size": 16, "vocab_chunk_size": 16}, name)
    assert tracer.full_vocab_float() == []
    # apart from hidden-sized tensors ([..., hidden]: states, their gradients, the weight
    # gradient), every float buffer is at most one chunk x one vocabulary block
    floats = [r for r in tracer.records if r[2].is_floating_point and r[1][-1:] != (HIDDEN,)]
    assert max(r[3] for r in floats) <= 16 * 16


def test_differentiable_queries_reach_backward_under_the_tracer():
    tracer, out = trace({"chunk_size": 16}, "entropy")
    assert out.requires_grad
    # the weight gradient was produced inside the traced region (so backward was traced too)
    assert any(r[1] == (VOCAB, HIDDEN) for r in tracer.records)


def test_tracer_catches_a_naive_implementation():
    hidden, weight, bias, _, _, tokens, _ = make_inputs()
    with AllocationTracer() as tracer:
        logits = hidden @ weight.T + bias
        logp = torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None])
        logp.sum().backward()
    flagged = tracer.full_vocab_float()
    assert flagged, "the tracer must flag the naive full-logits computation"
    assert any(r[1] == (BATCH, SEQ, VOCAB) for r in flagged)


def test_tracer_catches_a_full_size_buffer_hidden_inside_a_custom_function():
    class Sneaky(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight):
            return (hidden @ weight.T).logsumexp(-1)

        @staticmethod
        def backward(ctx, grad):
            raise AssertionError("not reached")

    hidden, weight, *_ = make_inputs()
    with AllocationTracer() as tracer:
        Sneaky.apply(hidden.detach(), weight.detach())
    assert tracer.full_vocab_float()
