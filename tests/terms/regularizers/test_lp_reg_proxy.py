"""Lp-Reg's proxy query (rlobj/terms/regularizers/lp_reg_proxy.py: ProxyLogProb, proxy_logp): the
proxy's mass properties (sums to one, nothing below the threshold, pi_proxy / pi_old = 1/Z on the kept
set) through the view, the function against a dense float64 reference, the temperature, bad input."""

import math

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import VocabView
from rlobj.terms.regularizers import proxy_logp

F64 = torch.float64


@pytest.mark.parametrize("mode", ["minp", "fixed"])
def test_proxy_mass_properties_via_the_view(mode):
    g = torch.Generator().manual_seed(0)
    vocab, tau = 7, 0.15
    logits = 2 * torch.randn(2, 3, vocab, generator=g, dtype=F64)
    view = VocabView.from_logits(logits)
    probs = torch.softmax(logits, -1)
    proxy = torch.stack([view.proxy_logp(torch.full((2, 3), v), tau, mode) for v in range(vocab)], -1)
    mass = torch.where(proxy > -1e3, proxy.exp(), torch.zeros((), dtype=F64))
    torch.testing.assert_close(mass.sum(-1), torch.ones(2, 3, dtype=F64))  # sums to one
    threshold = tau * probs.max(-1, keepdim=True).values if mode == "minp" else torch.full_like(probs, tau)
    below = probs < threshold
    assert (proxy[below] == -1e4).all()  # no mass below the threshold
    kept = ~below
    ratio = mass / probs
    for b in range(2):
        for t in range(3):
            r = ratio[b, t][kept[b, t]]
            if r.numel():
                torch.testing.assert_close(r, r[:1].expand_as(r))  # pi_proxy / pi_old = 1/Z on the kept set
                assert float(r[0]) >= 1 - 1e-12


@pytest.mark.parametrize("mode, kappa", [("minp", 0.1), ("minp", 0.5), ("fixed", 0.05), ("fixed", 0.3)])
def test_proxy_logp_matches_a_dense_reference(mode, kappa):
    g = torch.Generator().manual_seed(3)
    logits = 1.5 * torch.randn(2, 4, 9, generator=g, dtype=F64)
    tokens = torch.randint(0, 9, (2, 4), generator=g)
    probs = torch.softmax(logits, -1)
    threshold = kappa * probs.max(-1, keepdim=True).values if mode == "minp" else torch.full_like(probs, kappa)
    kept = torch.where(probs >= threshold, probs, torch.zeros((), dtype=F64))
    mass = kept.sum(-1, keepdim=True)
    proxy = torch.where(mass > 0, kept / mass.clamp_min(1e-300), torch.full_like(kept, 1 / 9))
    expected = proxy.gather(-1, tokens[..., None])[..., 0]
    expected = torch.where(expected > 0, expected.log(), torch.full_like(expected, -1e4))
    out = proxy_logp(VocabView.from_logits(logits), tokens, kappa=kappa, mode=mode)
    torch.testing.assert_close(out, expected)


def test_proxy_logp_temperature_renormalises_the_tempered_policy():
    logits = torch.log(torch.tensor([[[0.5, 0.3, 0.19, 0.01]]], dtype=F64))
    tokens = torch.tensor([[1]])
    plain = proxy_logp(VocabView.from_logits(logits), tokens, kappa=0.1)
    assert float(plain.exp()) == pytest.approx(0.3 / 0.99)
    # the kept set is the view's (0.01 < 0.1 x 0.5 is filtered); T renormalises exp(z / T) over it
    root = [math.sqrt(v) for v in (0.5, 0.3, 0.19)]
    hot = proxy_logp(VocabView.from_logits(logits), tokens, kappa=0.1, temperature=2.0)
    assert float(hot.exp()) == pytest.approx(root[1] / sum(root))


def test_proxy_logp_bad_mode():
    view = VocabView.from_logits(torch.zeros(1, 1, 3))
    with pytest.raises(RlobjInputError, match="mode"):
        proxy_logp(view, torch.zeros(1, 1, dtype=torch.long), mode="topk")
