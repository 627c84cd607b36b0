"""Options named after a peer (DESIGN 6b): verl's singleton groups and Bessel-corrected whitening,
TRL's importance-weighted KL. Hand-computed values; bad values refused. The same options are
compared with the peers' own functions in tests/integrations (scripts/test_peers.sh)."""

import math

import pytest
import torch

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import (
    batch_whiten,
    group_baseline_whiten,
    group_mean_baseline,
    leave_one_out,
)
from rlobj.terms.divergences import k3_kl, kl_penalty

F64 = torch.float64


def _state(rewards, group_ids, lengths=None):
    lengths = lengths or [1] * len(rewards)
    mask = torch.tensor([[t < n for t in range(max(lengths))] for n in lengths])
    return State.from_batch(logp=torch.zeros(mask.shape, dtype=F64), mask=mask,
                            rewards=torch.tensor(rewards, dtype=F64), group_ids=torch.tensor(group_ids))


def _first(state, term):
    return term(state).advantages[:, 0].tolist()


def test_group_mean_baseline_singleton_verl():
    # group 0: r = (1, 0), mean 1/2 -> (1/2, -1/2); group 5: r = (2) alone: verl takes mean 0 -> 2
    state = _state([1.0, 0.0, 2.0], [0, 0, 5])
    assert _first(state, group_mean_baseline(singleton="verl")) == [0.5, -0.5, 2.0]
    assert _first(state, group_mean_baseline()) == [0.5, -0.5, 0.0]


def test_leave_one_out_singleton_verl():
    # group 0: r = (1, 0, 0.5): others' means (0.25, 0.75, 0.5) -> (0.75, -0.75, 0); group 7 alone -> r = 2
    state = _state([1.0, 0.0, 0.5, 2.0], [0, 0, 0, 7])
    assert _first(state, leave_one_out(singleton="verl")) == pytest.approx([0.75, -0.75, 0.0, 2.0], rel=1e-12)
    with pytest.raises(RlobjInputError, match=r"leave_one_out needs at least 2.*\[7\]"):
        leave_one_out()(state)


def test_batch_whiten_bessel():
    # returns (0.5, 0.5, 1 | 0.5, 0) over 5 tokens: mean 0.5, squared deviations sum 0.5;
    # Bessel variance 0.5/4 = 0.125 (population 0.1) -> A = dev / sqrt(0.125 + 1e-8)
    state = State.from_batch(logp=torch.zeros(2, 3, dtype=F64), mask=torch.tensor([[1, 1, 1], [1, 1, 0]]),
                             rewards=torch.tensor([1.0, 0.0], dtype=F64),
                             token_rewards=torch.tensor([[0.0, -0.5, 0.0], [0.5, 0.0, 0.0]], dtype=F64))
    a = 0.5 / math.sqrt(0.125 + 1e-8)
    torch.testing.assert_close(batch_whiten(unbiased=True)(state).advantages,
                               torch.tensor([[0, 0, a], [0, -a, 0]], dtype=F64), atol=1e-12, rtol=1e-12)


def test_group_baseline_whiten_bessel_and_singleton():
    # centred (1/2, -1/2 | 0, 0) on lengths (1, 3 | 2, 2): 8 token values, mean -1/8, squared
    # deviations sum 0.875; Bessel variance 0.875/7 = 0.125
    state = _state([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1], lengths=[1, 3, 2, 2])
    s = math.sqrt(0.125 + 1e-8)
    p, m, z = 0.625 / s, -0.375 / s, 0.125 / s
    want = torch.tensor([[p, 0, 0], [m, m, m], [z, z, 0], [z, z, 0]], dtype=F64)
    torch.testing.assert_close(group_baseline_whiten(unbiased=True)(state).advantages, want, atol=1e-12, rtol=1e-12)
    # r = (1, 0 | 3 alone): verl centres the singleton on 0 -> (1/2, -1/2, 3); mean 1,
    # deviations (-1/2, -3/2, 2), population variance 6.5/3
    alone = _state([1.0, 0.0, 3.0], [0, 0, 1])
    s = math.sqrt(6.5 / 3 + 1e-8)
    assert _first(alone, group_baseline_whiten(singleton="verl")) == pytest.approx([-0.5 / s, -1.5 / s, 2 / s],
                                                                                    rel=1e-12)
    # default: the singleton is centred on its own reward: (1/2, -1/2, 0), mean 0, variance 1/6
    s = math.sqrt(1 / 6 + 1e-8)
    assert _first(alone, group_baseline_whiten()) == pytest.approx([0.5 / s, -0.5 / s, 0.0], rel=1e-12)


def test_kl_bias_correction_value_and_gradient():
    # on-policy (logp_old = logp): the weight pi/pi_old is 1 in value; the gradient of
    # (e^d - d - 1) * e^(logp - logp_old) with d = logp_ref - logp is (1 - e^d) + (e^d - d - 1) = -d
    logp = torch.tensor([[-1.0, -2.0]], dtype=F64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]], dtype=F64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    d = ref - logp.detach()
    for correction, want_grad in ((True, -d), (False, 1 - d.exp())):
        state = State.from_batch(logp=logp, logp_ref=ref, logp_old=logp.detach(), mask=mask)
        part = k3_kl(1.0, clamp=False, bias_correction=correction)(state).parts["kl_ref"]
        torch.testing.assert_close(part.values.detach(), d.expm1() - d, atol=1e-15, rtol=0)
        (grad,) = torch.autograd.grad(part.values.sum(), logp)
        torch.testing.assert_close(grad, want_grad, atol=1e-15, rtol=0)
    # off-policy the value is weighted: logp_old = logp - 0.1 -> weight e^0.1
    state = State.from_batch(logp=logp, logp_ref=ref, logp_old=logp.detach() - 0.1, mask=mask)
    part = k3_kl(1.0, clamp=False, bias_correction=True)(state).parts["kl_ref"]
    torch.testing.assert_close(part.values.detach(), (d.expm1() - d) * math.exp(0.1), atol=1e-14, rtol=0)


@pytest.mark.parametrize("build, match", [
    (lambda: group_mean_baseline(singleton="error"), "group_mean_baseline.singleton"),
    (lambda: leave_one_out(singleton="zero"), "leave_one_out.singleton"),
    (lambda: group_baseline_whiten(singleton="trl"), "group_baseline_whiten.singleton"),
    (lambda: kl_penalty(bias_correction=True, placement="reward"), "kl_penalty.bias_correction"),
])
def test_bad_options_are_refused(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


def test_truncated_mask_trl_normalizer_hand_values_and_micro_batches():
    from rlobj.algebra.aggregation import seq_mean_token_mean, token_mean
    from rlobj.algebra.objective import Objective
    from rlobj.algebra.state import Normalizer
    from rlobj.terms.masks import truncated_mask
    from rlobj.terms.surrogates import reinforce

    # 3 rows, lengths (2, 3, 1); row 1 truncated. REINFORCE loss on token t: -A_i * logp (value -A_i*logp)
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-1.0, -1.0, -1.0], [-3.0, 0.0, 0.0]], dtype=F64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    fields = dict(logp=logp, mask=mask, advantages=torch.tensor([1.0, 2.0, -1.0], dtype=F64),
                  extras={"truncated": torch.tensor([False, True, False])})
    # kept token losses: row 0: 1 + 2 = 3; row 2: -3. token_mean: "keep" / 6 tokens, "trl" / 3 tokens
    for normalizer, want in (("keep", 0.0 / 6), ("trl", 0.0 / 3)):
        out = Objective(reinforce() >> truncated_mask(normalizer=normalizer) >> token_mean())(**fields)
        assert float(out.loss) == pytest.approx(want, abs=1e-15)
    fields["advantages"] = torch.tensor([1.0, 2.0, 1.0], dtype=F64)  # kept sums 3 and 3
    out = Objective(reinforce() >> truncated_mask(normalizer="trl") >> token_mean())(**fields)
    assert float(out.loss) == pytest.approx(6.0 / 3, rel=1e-14)
    out = Objective(reinforce() >> truncated_mask() >> token_mean())(**fields)
    assert float(out.loss) == pytest.approx(6.0 / 6, rel=1e-14)
    # seq_mean_token_mean, TRL's grpo: row means (1.5, 0, 3) over all 3 rows
    out = Objective(reinforce() >> truncated_mask(normalizer="trl") >> seq_mean_token_mean())(**fields)
    assert float(out.loss) == pytest.approx(4.5 / 3, rel=1e-14)
    # micro-batch law with the mini-batch statistics: rows {0, 1} and {2} add up to the whole
    objective = Objective(reinforce() >> truncated_mask(normalizer="trl") >> token_mean())
    state = objective.prepare(**fields)
    state = state.update(extras={**state.extras, **objective.minibatch_stats(state)})
    whole = objective.loss(state, normalizer=Normalizer.from_masks([mask])).loss
    pieces = objective.split(state, [2, 1])
    normalizer = Normalizer.from_masks([p.mask for p in pieces])
    assert float(sum(objective.loss(p, normalizer=normalizer).loss for p in pieces)) == pytest.approx(float(whole),
                                                                                                      rel=1e-14)
    with pytest.raises(RlobjInputError, match="truncated_mask.normalizer"):
        truncated_mask(normalizer="drop")
