"""DPH-RL's divergence (rlobj/terms/divergences/dph.py): hand values and rows, the generators
summed over an enumerated vocabulary against the closed forms, the gradient's sign, eta = 0, bad input."""

import math

import pytest
import torch
from hypothesis import given
from terms._vocab_batches import _lp_batch
from terms.divergences._full_vocab_refs import F64, LOG2, SETTINGS, logit_pairs, loop_divergence

from rlobj import (
    Objective,
    State,
    clip_ratio,
    dph_divergence,
    group_zscore,
)
from rlobj.ops.errors import RlobjInputError


def test_dph_hand_values_and_rows():
    # u = 2 on row 0 (perfect split), row 1 is not in the split
    logp = torch.log(torch.tensor([[0.4, 0.2], [0.4, 0.2]], dtype=F64))
    logp_init = torch.log(torch.tensor([[0.2, 0.2], [0.2, 0.1]], dtype=F64))
    mask = torch.tensor([[True, True], [True, True]])
    rows = torch.tensor([True, False])
    extras = {"logp_init": logp_init, "dph_rows": rows}
    for form, d2 in (("forward", 2 - math.log(2) - 1), ("js", 2 * math.log(2) - 3 * math.log(1.5)),
                     ("alpha", (2 ** 0.8 - 0.8 * 2 - 0.2) / (0.2 * -0.8))):
        out = dph_divergence(form, eta=0.1)(State.from_batch(logp=logp, mask=mask, extras=extras))
        part = out.parts["dph"]
        assert part.mask.tolist() == [[True, True], [False, False]]
        assert part.values[0].tolist() == pytest.approx([0.1 * d2, 0.0], abs=1e-12), form
        assert part.values[1].tolist() == [0.0, 0.0]


@SETTINGS
@given(pair=logit_pairs())
def test_dph_generators_over_the_whole_vocabulary(pair):
    """sum_v pi0 d(pi/pi0) over an enumerated vocabulary gives the closed forms."""
    logits, ref_logits, mask = pair
    log_p, log_0 = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    p0 = log_0.exp()
    forward = dph_divergence("forward").per_token(log_p, log_0)
    js_gen = dph_divergence("js").per_token(log_p, log_0)
    full_forward = (p0 * forward).sum(-1)
    full_js = (p0 * js_gen).sum(-1)
    unclamped = (forward < 10).all(-1)  # the forward form keeps verl's clamp of the value at 10
    torch.testing.assert_close(full_forward[unclamped],
                               loop_divergence(logits, ref_logits, torch.ones_like(mask), "forward")[unclamped])
    torch.testing.assert_close(full_js, 2 * loop_divergence(logits, ref_logits, torch.ones_like(mask), "js"))
    assert (full_js <= 2 * LOG2 + 1e-12).all() and (forward >= 0).all() and (js_gen >= -1e-12).all()
    alpha = dph_divergence("alpha", alpha=0.3).per_token(log_p, log_0)
    assert (alpha >= -1e-12).all()


def test_dph_gradient_sign_and_eta_zero():
    logp = torch.log(torch.tensor([[0.1, 0.5]], dtype=F64)).requires_grad_(True)
    logp_init = torch.log(torch.tensor([[0.3, 0.2]], dtype=F64))
    state = State.from_batch(logp=logp, mask=torch.ones(1, 2, dtype=torch.bool),
                             extras={"logp_init": logp_init, "dph_rows": torch.tensor([True])})
    dph_divergence("forward", eta=1.0).loss(state).loss.backward()
    # raises logp where pi < pi0 (negative gradient of the loss), lowers it where pi > pi0
    assert logp.grad[0, 0] < 0 < logp.grad[0, 1]
    zero = (group_zscore() >> clip_ratio() >> dph_divergence(eta=0.0))
    batch = _lp_batch(seed=2)
    base = Objective(group_zscore() >> clip_ratio())(**batch).loss
    torch.testing.assert_close(Objective(zero)(**batch).loss, base)


def test_dph_bad_form():
    with pytest.raises(RlobjInputError, match="dph_divergence.form"):
        dph_divergence("reverse")
