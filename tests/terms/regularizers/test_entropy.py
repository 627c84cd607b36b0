"""Entropy regularisers (rlobj/terms/regularizers/entropy.py): the test layers of DESIGN.md s.7.

entropy_bonus: hand values, loop reference on Hypothesis inputs, gradients through a given
entropy tensor and through the lazily computed full-vocab entropy (gradcheck on logits),
coef 0 adds nothing. adaptive_entropy: the sign and proportional update rules against a loop
reference, movement toward the target, clipping, the input term_state left untouched.
"""

import math

import pytest
import torch
from batches import F64, padded_start, t
from hypothesis import given
from hypothesis import strategies as st
from terms._vocab_batches import _lp_batch

from rlobj.algebra import Objective, State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.masks import top_entropy_mask
from rlobj.terms.regularizers import adaptive_entropy, entropy_bonus, sampled_entropy_bonus
from rlobj.terms.surrogates import reinforce


class LogitsVocab:
    """A minimal vocab view: full-vocab entropy from [batch, seq, vocab] logits; counts calls."""

    def __init__(self, logits):
        self.logits = logits
        self.calls = 0

    def entropy(self):
        self.calls += 1
        logp = torch.log_softmax(self.logits, dim=-1)
        return -(logp.exp() * logp).sum(-1)


@st.composite
def batches(draw):
    g, mask = padded_start(draw, 4, 6)
    b, n = mask.shape
    entropy = torch.rand(b, n, generator=g, dtype=F64) * draw(st.sampled_from([0.3, 2.0]))
    entropy = torch.where(mask, entropy, torch.full_like(entropy, float("nan")))  # garbage in padding
    logp = -torch.rand(b, n, generator=g, dtype=F64) - 1e-3
    return {"logp": logp, "mask": mask, "entropy": entropy}


def valid_mean(values, mask):
    items = [v for row, mrow in zip(values.tolist(), mask.tolist(), strict=True)
             for v, m in zip(row, mrow, strict=True) if m]
    return math.fsum(items) / max(len(items), 1), len(items)


# =========================================================================== entropy_bonus
def test_entropy_bonus_hand_values():
    # H = [[0.5, 1.0, pad]], coef 0.1: part -0.1*H = [-0.05, -0.1], token mean -0.075
    out = entropy_bonus(coef=0.1).loss(logp=t([[-1.0, -1.0, 0.0]]), mask=t([[1, 1, 0]]).bool(),
                                       entropy=t([[0.5, 1.0, 9.0]]))
    part = out.state.parts["entropy"]
    assert part.values[0, :2].tolist() == pytest.approx([-0.05, -0.1])
    assert float(out.loss) == pytest.approx(-0.075)
    assert float(out.metrics["entropy"]) == pytest.approx(0.75)
    assert entropy_bonus().coef == 0.001


@given(batches(), st.sampled_from([-0.01, 0.0, 0.001, 0.5]))
def test_entropy_bonus_matches_loop_reference_and_gradient(batch, coef):
    entropy = batch["entropy"].clone().requires_grad_()
    out = entropy_bonus(coef=coef).loss(logp=batch["logp"], mask=batch["mask"], entropy=entropy)
    mean, count = valid_mean(batch["entropy"], batch["mask"])
    assert float(out.loss.detach()) == pytest.approx(-coef * mean, rel=1e-12, abs=1e-15)
    assert float(out.metrics["entropy"]) == pytest.approx(mean, rel=1e-12)
    out.loss.backward()
    expected = torch.where(batch["mask"], torch.full_like(entropy, -coef / count), 0.0)
    torch.testing.assert_close(entropy.grad, expected)


def test_entropy_bonus_gradcheck_through_lazy_vocab_entropy():
    mask = t([[1, 1, 0], [1, 0, 0]]).bool()
    logp = t([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    logits = torch.randn(2, 3, 5, dtype=F64, generator=torch.Generator().manual_seed(0)).requires_grad_()

    def f(z):
        return entropy_bonus(coef=0.3).loss(logp=logp, mask=mask, vocab=LogitsVocab(z)).loss

    assert torch.autograd.gradcheck(f, (logits,))
    # value: -0.3 * mean of the full-vocab entropies at the 3 valid tokens
    p = torch.softmax(logits.detach(), -1)
    h = -(p * p.log()).sum(-1)
    assert float(f(logits).detach()) == pytest.approx(-0.3 * float(h[mask].mean()))
    # gradient of a bonus raises entropy: one small step along -grad increases the mean entropy
    loss = f(logits)
    (grad,) = torch.autograd.grad(loss, logits)
    p2 = torch.softmax(logits.detach() - 0.1 * grad, -1)
    assert float((-(p2 * p2.log()).sum(-1))[mask].mean()) > float(h[mask].mean())


def test_lazy_entropy_is_computed_once_per_state():
    vocab = LogitsVocab(torch.zeros(1, 2, 4, dtype=F64))
    state = State.from_batch(logp=t([[-1.0, -1.0]]), mask=torch.ones(1, 2, dtype=torch.bool), vocab=vocab,
                             advantages=t([[1.0, 1.0]]))
    out = Objective(reinforce() >> top_entropy_mask(rho=0.5) >> entropy_bonus())(state)
    assert vocab.calls == 1
    assert float(out.metrics["entropy"]) == pytest.approx(math.log(4))


@given(batches())
def test_entropy_bonus_with_coef_zero_adds_zero(batch):
    adv = torch.ones_like(batch["logp"])
    kw = {"mask": batch["mask"], "entropy": batch["entropy"], "advantages": adv}
    lp1 = batch["logp"].clone().requires_grad_()
    lp2 = batch["logp"].clone().requires_grad_()
    with_bonus = (reinforce() >> entropy_bonus(coef=0.0)).loss(logp=lp1, **kw)
    without = reinforce().loss(logp=lp2, **kw)
    assert float(with_bonus.metrics["loss/entropy"]) == 0.0
    torch.testing.assert_close(with_bonus.loss, without.loss)
    with_bonus.loss.backward()
    without.loss.backward()
    torch.testing.assert_close(lp1.grad, lp2.grad)


# =========================================================================== adaptive_entropy
def own(out):
    (value,) = out.term_state.values()
    return value


def test_adaptive_entropy_hand_values():
    kw = {"logp": t([[-1.0, -1.0]]), "mask": torch.ones(1, 2, dtype=torch.bool), "entropy": t([[0.1, 0.2]])}
    # mean H = 0.15 < target 0.2: sign rule c1 = 0 + 0.005; the loss of this step uses c0 = 0
    out = adaptive_entropy().loss(**kw)
    assert own(out) == pytest.approx(0.005)
    assert float(out.loss) == 0.0 and float(out.metrics["entropy/coef"]) == 0.0
    # next call with the returned state: loss -0.005 * 0.15, coefficient 0.01
    out2 = adaptive_entropy().loss(**kw, term_state=out.term_state)
    assert float(out2.loss) == pytest.approx(-0.005 * 0.15)
    assert own(out2) == pytest.approx(0.01)
    # proportional: c1 = 0.05 + 0.5 * (0.2 - 0.15) = 0.075
    out = adaptive_entropy(rule="proportional", init_coef=0.05, step=0.5).loss(**kw)
    assert own(out) == pytest.approx(0.075)
    assert float(out.loss) == pytest.approx(-0.05 * 0.15)
    # above target with the sign rule: 0.05 - 0.005; clipped at min_coef 0 from 0.002
    high = dict(kw, entropy=t([[0.5, 0.7]]))
    assert own(adaptive_entropy(init_coef=0.05).loss(**high)) == pytest.approx(0.045)
    assert own(adaptive_entropy(init_coef=0.002).loss(**high)) == 0.0
    assert own(adaptive_entropy(init_coef=0.099).loss(**kw)) == pytest.approx(0.1)  # max_coef


def ref_update(coef, mean, target, step, lo, hi, rule):
    new = (coef + step if mean < target else coef - step) if rule == "sign" else coef + step * (target - mean)
    return min(max(new, lo), hi)


@given(batches(), st.sampled_from(["sign", "proportional"]), st.floats(0.0, 0.1), st.floats(0.0, 1.5),
       st.sampled_from([0.001, 0.005, 0.05]))
def test_adaptive_entropy_matches_loop_reference_and_moves_toward_target(batch, rule, coef, target, step):
    term = adaptive_entropy(target=target, step=step, rule=rule)
    state = State.from_batch(logp=batch["logp"], mask=batch["mask"], entropy=batch["entropy"])
    key = "adaptive_entropy"
    term_state = {key: coef, "other": [1, 2]}
    frozen = dict(term_state)
    out = Objective(term).loss(state, term_state=term_state)
    mean, _ = valid_mean(batch["entropy"], batch["mask"])
    new = out.term_state[key]
    assert new == pytest.approx(ref_update(coef, mean, target, step, 0.0, 0.1, rule), abs=1e-12)
    assert float(out.loss.detach()) == pytest.approx(-coef * mean, rel=1e-9, abs=1e-15)
    # toward the target: up when entropy is below it, down when above (within the clip range)
    if mean < target:
        assert new >= coef - 1e-12
    elif mean > target:
        assert new <= coef + 1e-12
    # the input term_state is not mutated; other terms' states pass through
    assert term_state == frozen and term_state[key] == coef
    assert out.term_state["other"] == [1, 2]
    assert 0.0 <= new <= 0.1


def test_adaptive_entropy_converges_to_max_when_entropy_stays_low():
    kw = {"logp": t([[-1.0]]), "mask": torch.ones(1, 1, dtype=torch.bool), "entropy": t([[0.05]])}
    term_state, coefs = None, []
    for _ in range(30):
        out = adaptive_entropy(step=0.01).loss(**kw, term_state=term_state)
        term_state = out.term_state
        coefs.append(own(out))
    assert coefs == sorted(coefs) and coefs[-1] == pytest.approx(0.1)


def test_adaptive_entropy_gradient():
    entropy = t([[0.3, 0.6, 0.1]]).requires_grad_()
    mask = t([[1, 1, 0]]).bool()
    out = adaptive_entropy(init_coef=0.04).loss(logp=t([[-1.0, -1.0, -1.0]]), mask=mask, entropy=entropy)
    out.loss.backward()
    torch.testing.assert_close(entropy.grad, t([[-0.02, -0.02, 0.0]]))


# =========================================================================== bad input
def test_missing_entropy_is_a_clear_error():
    for term in (entropy_bonus(), adaptive_entropy()):
        with pytest.raises(RlobjInputError, match="entropy.*neither an 'entropy' tensor nor a 'vocab'"):
            term.loss(logp=t([[-1.0]]), mask=torch.ones(1, 1, dtype=torch.bool))


def test_entropy_shape_is_checked():
    with pytest.raises(RlobjInputError, match=r"entropy: expected shape"):
        entropy_bonus().loss(logp=t([[-1.0, -1.0]]), mask=torch.ones(1, 2, dtype=torch.bool), entropy=t([[0.1]]))


@pytest.mark.parametrize("build, match", [
    (lambda: adaptive_entropy(step=-0.1), "adaptive_entropy.step"),
    (lambda: adaptive_entropy(rule="pid"), "adaptive_entropy.rule"),
    (lambda: adaptive_entropy(min_coef=0.2, max_coef=0.1), "min_coef"),
])
def test_invalid_hyperparameters(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


# ------------------------------------------------------------------------------------------
# entropy estimators
# ------------------------------------------------------------------------------------------


def test_sampled_entropy_value_and_zero_mean_gradient():
    batch = _lp_batch(seed=0)
    out = sampled_entropy_bonus(0.1).loss(**batch)
    mask = batch["mask"]
    expected = 0.1 * batch["logp"].detach()[mask].mean()
    assert float(out.loss) == pytest.approx(float(expected), rel=1e-6)
    # E_{y~pi}[grad(-log pi(y))] = 0 (exact enumeration), while grad H is not zero
    logits = torch.randn(5, dtype=F64, requires_grad=True)
    log_pi = torch.log_softmax(logits, -1)
    expected_grad = sum(log_pi[v].exp().detach() * torch.autograd.grad(-log_pi[v], logits, retain_graph=True)[0]
                        for v in range(5))
    torch.testing.assert_close(expected_grad, torch.zeros(5, dtype=F64), atol=1e-12, rtol=0)
    (entropy_grad,) = torch.autograd.grad(-(log_pi.exp() * log_pi).sum(), logits)
    assert entropy_grad.abs().max() > 1e-3


def test_full_vocab_entropy_bonus_reads_the_view():
    batch = _lp_batch(seed=1, vocab=True)
    del batch["entropy"]
    out = entropy_bonus(0.1).loss(**batch)
    logits = batch["vocab"]._tensors[0].double()
    entropy = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    assert float(out.loss) == pytest.approx(-0.1 * float(entropy[batch["mask"]].mean()), rel=1e-5)
