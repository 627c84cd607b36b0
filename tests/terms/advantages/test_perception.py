"""VOGUE bonus (rlobj/terms/advantages/perception.py)."""

import math

import pytest
import torch
from batches import make_batch
from hypothesis import given, settings
from hypothesis import strategies as st
from terms._perception_helpers import fields, sym_kl_loop

from rlobj import (
    Objective,
    clip_ratio,
    group_zscore,
    token_mean,
    vogue_bonus,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import VocabView
from rlobj.terms.divergences import symmetric_kl

# ------------------------------------------------------------------------------------------
# VOGUE bonus
# ------------------------------------------------------------------------------------------


def vogue_run(term, f, advantages, noisy, entropy=None):
    fields_ = dict(logp=f["logp"], mask=f["mask"], advantages=advantages,
                   vocab=VocabView.from_logits(f["logits"]),
                   extras={"vocab_perturbed": VocabView.from_logits(f["logits_perturbed"]), "noisy_branch": noisy})
    if entropy is not None:
        fields_["entropy"] = entropy
    return term(_state(**fields_))


def _state(**fields_):
    from rlobj.algebra.state import State

    return State.from_batch(**fields_)


def vogue_loop(f, advantages, noisy, lambda_u, cap, lambda_h=0.0, kappa=2.0, entropy=None):
    u = sym_kl_loop(f["logits"], f["logits_perturbed"], f["mask"])
    out = advantages.double().clone()
    for i in range(u.shape[0]):
        valid = [t for t in range(u.shape[1]) if f["mask"][i, t]]
        mean_u = sum(float(u[i, t]) for t in valid) / max(len(valid), 1)
        for t in valid:
            if noisy[i]:
                a = abs(float(advantages[i, t]))
                bonus = min(lambda_u * mean_u, cap * a)
                if lambda_h > 0:
                    bonus += min(lambda_h * float(entropy[i, t]), a / kappa)
                out[i, t] += bonus
    return torch.where(f["mask"], out, torch.zeros((), dtype=torch.float64))


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), lambda_u=st.floats(0, 5), cap=st.floats(0, 0.99),
       lambda_h=st.sampled_from([0.0, 0.3]))
def test_vogue_bonus_matches_loop_and_keeps_signs(seed, lambda_u, cap, lambda_h):
    f = fields(4, 3, seed)
    generator = torch.Generator().manual_seed(seed)
    advantages = torch.randn(4, 1, generator=generator).expand(4, 3).clone()
    advantages[0] = 0.0
    noisy = torch.tensor([True, True, False, True])
    entropy = torch.rand(4, 3, generator=generator)
    kappa = 4.0
    term = vogue_bonus(lambda_u=lambda_u, cap=cap, lambda_h=lambda_h, kappa=kappa)
    state = vogue_run(term, f, advantages, noisy, entropy=entropy)
    expected = vogue_loop(f, advantages, noisy, lambda_u, cap, lambda_h, kappa, entropy)
    torch.testing.assert_close(state.advantages.double(), expected, atol=1e-5, rtol=1e-5)
    bonus = (state.advantages - torch.where(f["mask"], advantages, 0.0))[f["mask"]]
    assert bool((bonus >= -1e-7).all())
    assert float(state.advantages[0].abs().max()) == 0.0  # A = 0 gets no bonus
    assert float(state.advantages[2].sub(advantages[2]).abs().max()) == 0.0  # not a noisy row
    if cap + (1 / kappa if lambda_h > 0 else 0.0) < 1:  # the documented bound on the bonus
        signs_kept = torch.sign(state.advantages[f["mask"]]) == torch.sign(advantages[f["mask"]])
        assert bool(signs_kept.all())


def test_vogue_bonus_hand_value_and_monotone_in_uncertainty():
    f = fields(1, 2, 0)
    f["mask"] = torch.ones(1, 2, dtype=torch.bool)
    f["logits"] = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    f["logits_perturbed"] = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0]]])
    f["logp"] = torch.log(torch.full((1, 2), 0.5))
    u0 = 0.5 * ((0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)) + (0.75 * math.log(1.5) + 0.25 * math.log(0.5)))
    advantages = torch.tensor([[1.0, 1.0]])
    state = vogue_run(vogue_bonus(lambda_u=1.0, cap=10.0), f, advantages, torch.tensor([True]))
    torch.testing.assert_close(state.advantages, torch.tensor([[1.0, 1.0]]) + u0 / 2)
    capped = vogue_run(vogue_bonus(lambda_u=100.0, cap=0.25), f, advantages, torch.tensor([True]))
    torch.testing.assert_close(capped.advantages, torch.tensor([[1.25, 1.25]]))
    stronger = dict(f, logits_perturbed=torch.tensor([[[math.log(9.0), 0.0], [0.0, 0.0]]]))
    more = vogue_run(vogue_bonus(lambda_u=1.0, cap=10.0), stronger, advantages, torch.tensor([True]))
    assert float(more.advantages[0, 0]) > float(state.advantages[0, 0])


def test_vogue_bonus_off_is_plain_advantage():
    batch = make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=5, vocab=True)
    plain = Objective(group_zscore() >> clip_ratio() >> token_mean())(**batch)
    noisy_none = dict(batch, extras={**batch["extras"], "noisy_branch": torch.zeros(8, dtype=torch.bool)})
    for term, extras_batch in ((vogue_bonus(lambda_u=0.0), batch), (vogue_bonus(), noisy_none)):
        out = Objective(group_zscore() >> term >> clip_ratio() >> token_mean())(**extras_batch)
        torch.testing.assert_close(out.state.advantages, plain.state.advantages)


def test_vogue_bonus_bad_input():
    with pytest.raises(RlobjInputError, match="vogue_bonus.rows"):
        vogue_bonus(rows="some")
    with pytest.raises(RlobjInputError, match="vogue_bonus.kappa"):
        vogue_bonus(kappa=0.0)
    with pytest.raises(RlobjInputError, match="vogue_bonus.lambda_u"):
        vogue_bonus(lambda_u=-1.0)
    f = fields(2, 3)
    with pytest.raises(RlobjInputError, match=r"extras\['noisy_branch'\]: expected a bool"):
        vogue_run(vogue_bonus(), f, torch.ones(2, 3), torch.ones(2))
    with pytest.raises(RlobjInputError, match=r"extras\['noisy_branch'\]"):
        vogue_run(vogue_bonus(), f, torch.ones(2, 3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(RlobjInputError, match="reads 'advantages'"):
        vogue_run(vogue_bonus(), f, None, torch.ones(2, dtype=torch.bool))
    with pytest.raises(RlobjInputError, match="symmetric_kl: expected two VocabViews"):
        symmetric_kl(VocabView.from_logits(f["logits"]), f["logits"])
