import math
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj import Normalizer, Objective, grpo, seq_mean_token_mean, token_mean
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.supervised import sft
from rlobj.train import build_train_objective


def test_hand_computed_token_mean():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.125, 1.0, 0.3]]))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = sft().loss(logp=logp, mask=mask)
    expected = (math.log(2) + math.log(4) + math.log(8)) / 3
    assert float(out.loss) == pytest.approx(expected, rel=1e-6)
    assert float(out.metrics["sft/nll"]) == pytest.approx(expected, rel=1e-6)
    assert float(out.metrics["loss/sft"]) == pytest.approx(expected, rel=1e-6)


def test_hand_computed_seq_mean_and_coef():
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.125, 1.0]]))
    mask = torch.tensor([[True, True], [True, False]])
    out = (sft(coef=0.5) >> seq_mean_token_mean()).loss(logp=logp, mask=mask)
    expected = 0.5 * (((math.log(2) + math.log(4)) / 2 + math.log(8)) / 2)
    assert float(out.loss) == pytest.approx(expected, rel=1e-6)


def _reference(logp, mask, coef):
    total, count = 0.0, 0
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[i, t]:
                total += -coef * float(logp[i, t])
                count += 1
    return total / max(count, 1)


@settings(max_examples=40)
@given(st.integers(1, 4), st.integers(1, 5), st.floats(0.0, 3.0), st.integers(0, 10_000))
def test_matches_plain_loop(batch, seq, coef, seed):
    generator = torch.Generator().manual_seed(seed)
    logp = -torch.rand(batch, seq, generator=generator, dtype=torch.float64) * 5
    mask = torch.rand(batch, seq, generator=generator) > 0.3
    mask[0, 0] = True
    out = sft(coef=coef).loss(logp=logp, mask=mask)
    assert float(out.loss) == pytest.approx(_reference(logp, mask, coef), rel=1e-9, abs=1e-12)


def test_gradient_is_minus_coef_over_count():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.7]], dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[True, True, False]])
    sft(coef=2.0).loss(logp=logp, mask=mask).loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, -1.0, 0.0]], dtype=torch.float64))
    logp2 = logp.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: sft(coef=0.3).loss(logp=x, mask=mask).loss, (logp2,))


def test_micro_batches_add_up_to_the_batch():
    generator = torch.Generator().manual_seed(0)
    logp = -torch.rand(6, 4, generator=generator, dtype=torch.float64)
    mask = torch.rand(6, 4, generator=generator) > 0.4
    mask[:, 0] = True
    for aggregation in (token_mean(), seq_mean_token_mean()):
        objective = Objective(sft() >> aggregation)
        whole = objective(logp=logp, mask=mask).loss
        state = objective.prepare(logp=logp, mask=mask)
        pieces = objective.split(state, [2, 3, 1])
        normalizer = Normalizer.from_masks([p.mask for p in pieces])
        summed = sum(objective.loss(p, normalizer=normalizer).loss for p in pieces)
        assert float(summed) == pytest.approx(float(whole), rel=1e-12)


def test_extras_mask_and_logp_key_select_demonstrations():
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.25]]))
    demo_logp = torch.log(torch.tensor([[0.1, 0.1], [0.125, 0.125]]))
    mask = torch.ones(2, 2, dtype=torch.bool)
    demo = torch.tensor([[False, False], [True, True]])
    out = sft(mask_key="demo").loss(logp=logp, mask=mask, extras={"demo": demo})
    # only row 1 counts in the numerator; the global normaliser counts all 4 response tokens
    assert float(out.loss) == pytest.approx(2 * math.log(4) / 4, rel=1e-6)
    out = sft(mask_key="demo", logp_key="demo_logp").loss(
        logp=logp, mask=mask, extras={"demo": demo, "demo_logp": demo_logp})
    assert float(out.loss) == pytest.approx(2 * math.log(8) / 4, rel=1e-6)
    assert float(out.metrics["sft/nll"]) == pytest.approx(math.log(8), rel=1e-6)


def test_hybrid_chain_with_grpo():
    logp = torch.log(torch.full((4, 3), 0.5))
    out = (grpo >> sft(coef=0.1)).loss(
        logp=logp, logp_old=logp, mask=torch.ones(4, 3, dtype=torch.bool),
        rewards=torch.tensor([1.0, 0.0, 1.0, 0.0]), group_ids=torch.tensor([0, 0, 1, 1]))
    assert set(out.state.parts) == {"policy", "sft"}
    assert float(out.metrics["loss/sft"]) == pytest.approx(0.1 * math.log(2), rel=1e-6)


def test_errors_name_the_argument():
    with pytest.raises(RlobjInputError, match="sft.coef"):
        sft(coef=-1.0)
    with pytest.raises(RlobjInputError, match="sft.mask_key"):
        sft(mask_key="")
    with pytest.raises(RlobjInputError, match="extras:demo"):
        sft(mask_key="demo").loss(logp=torch.zeros(1, 2), mask=torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(RlobjInputError, match="shape"):
        sft(mask_key="demo").loss(logp=torch.zeros(1, 2), mask=torch.ones(1, 2, dtype=torch.bool),
                                  extras={"demo": torch.ones(1, 3, dtype=torch.bool)})


def test_registry_yaml_pickle_and_reads():
    term = build_train_objective([{"sft": {"coef": 0.5, "mask_key": "demo"}}])
    assert term == sft(coef=0.5, mask_key="demo")
    assert build_train_objective("sft") == sft()
    hybrid = build_train_objective(["grpo", {"sft": {"coef": 0.1}}])
    assert hybrid.terms[-1] == sft(coef=0.1) and len(hybrid.terms) == 4
    with pytest.raises(RlobjInputError, match="sft: unknown argument"):
        build_train_objective([{"sft": {"cof": 1.0}}])
    assert pickle.loads(pickle.dumps(term)) == term
    assert sft().slots_read() == {"logp", "mask"}
    assert sft(mask_key="d", logp_key="l").slots_read() == {"mask", "extras:d", "extras:l"}


def test_bf16_input():
    logp = torch.log(torch.tensor([[0.5, 0.25]])).bfloat16()
    out = sft().loss(logp=logp, mask=torch.ones(1, 2, dtype=torch.bool))
    assert torch.isfinite(out.loss)
