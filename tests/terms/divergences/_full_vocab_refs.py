"""Slow references shared by the full-vocabulary divergence tests (test_full_vocab.py, test_dph.py):
an explicit softmax over the whole vocabulary in float64, one token at a time, and Hypothesis pairs
of logits."""

import math

import torch
from hypothesis import settings
from hypothesis import strategies as st
from terms._vocab_batches import softmax_row

from rlobj.terms import f_generator

F64 = torch.float64
SETTINGS = settings(max_examples=25)
LOG2 = math.log(2.0)


def loop_divergence(logits, other_logits, mask, kind, temperature=1.0):
    """Per-token divergence of the current policy (``logits``) against ``other_logits``."""
    out = torch.zeros(mask.shape, dtype=F64)
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if not mask[b, t]:
                continue
            p = softmax_row(logits[b, t].double() / temperature)
            q = softmax_row(other_logits[b, t].double() / temperature)
            if kind == "forward":
                value = sum(qv * (math.log(qv) - math.log(pv)) for pv, qv in zip(p, q))
            elif kind == "reverse":
                value = sum(pv * (math.log(pv) - math.log(qv)) for pv, qv in zip(p, q))
            elif kind == "js":
                m = [(pv + qv) / 2 for pv, qv in zip(p, q)]
                value = 0.5 * sum(pv * math.log(pv / mv) for pv, mv in zip(p, m)) + \
                    0.5 * sum(qv * math.log(qv / mv) for qv, mv in zip(q, m))
            else:  # an f-generator name
                f = f_generator(kind)
                value = sum(qv * float(f(torch.tensor(pv / qv, dtype=F64))) for pv, qv in zip(p, q))
            out[b, t] = value
    return out




@st.composite
def logit_pairs(draw):
    batch, seq, vocab = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 8))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 4.0]))
    mask = torch.rand(batch, seq, generator=g) < 0.8
    mask[0, 0] = True
    return (scale * torch.randn(batch, seq, vocab, generator=g, dtype=F64),
            scale * torch.randn(batch, seq, vocab, generator=g, dtype=F64), mask)
