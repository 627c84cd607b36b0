"""SIREN's top-p entropy query (rlobj/terms/regularizers/siren_entropy.py: TopPEntropy, top_p_entropy):
a hand value, the float64 loop reference on random rows, the empty nucleus, the property
0 <= H <= log |N|, the gradient against autograd of the dense formula, bad input."""

import math

import pytest
import torch
from terms._vocab_batches import loop_top_p_entropy

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import VocabView
from rlobj.terms.regularizers import top_p_entropy

F64 = torch.float64


def test_hand_value_and_empty_nucleus():
    # nucleus {0.4, 0.25} (0.4 + 0.25 < 0.7, + 0.2 crosses): q = (8/13, 5/13)
    view = VocabView.from_logits(torch.log(torch.tensor([[[0.4, 0.25, 0.2, 0.15]]], dtype=F64)))
    q = torch.tensor([8 / 13, 5 / 13], dtype=F64)
    assert float(top_p_entropy(view, p=0.7)) == pytest.approx(float(-(q * q.log()).sum()))
    assert float(top_p_entropy(view, p=0.3)) == 0.0  # the top token alone reaches p: empty nucleus


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p", [0.3, 0.6, 0.9])
def test_matches_the_loop_reference_and_the_entropy_bounds(seed, p):
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(3, 5, 11, generator=g, dtype=F64)
    out = top_p_entropy(VocabView.from_logits(logits), p=p)
    expected = torch.tensor([[loop_top_p_entropy(logits[b, t], p) for t in range(5)] for b in range(3)], dtype=F64)
    torch.testing.assert_close(out, expected)
    probs = torch.sort(torch.softmax(logits, -1), -1, descending=True).values
    size = ((probs.cumsum(-1) < p).sum(-1)).clamp(min=1).double()
    assert (out >= -1e-12).all() and (out <= size.log() + 1e-12).all()


def test_gradient_matches_autograd_of_the_dense_formula():
    g = torch.Generator().manual_seed(7)
    logits = (2.0 * torch.randn(2, 3, 8, generator=g, dtype=F64)).requires_grad_(True)
    weights = torch.randn(2, 3, generator=g, dtype=F64)
    (top_p_entropy(VocabView.from_logits(logits), p=0.7) * weights).sum().backward()
    ours = logits.grad.clone()
    # dense: membership fixed from the values, entropy of the renormalised nucleus differentiated
    z = logits.detach().clone().requires_grad_(True)
    log_probs = torch.log_softmax(z, -1)
    order = torch.sort(log_probs.detach(), -1, descending=True)
    cumulative = order.values.exp().cumsum(-1)
    inside_sorted = cumulative < 0.7
    inside = torch.zeros_like(inside_sorted).scatter(-1, order.indices, inside_sorted)
    probs = torch.where(inside, log_probs.exp(), torch.zeros((), dtype=F64))
    q = probs / probs.sum(-1, keepdim=True).clamp_min(1e-300)
    entropy = -(torch.where(inside, q * torch.where(inside, q, torch.ones_like(q)).log(), torch.zeros_like(q))).sum(-1)
    (entropy * weights).sum().backward()
    torch.testing.assert_close(ours, z.grad)


def test_bad_p():
    view = VocabView.from_logits(torch.zeros(1, 1, 3))
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(RlobjInputError, match="p"):
            top_p_entropy(view, p=bad)
