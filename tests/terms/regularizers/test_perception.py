"""PAPO double entropy (rlobj/terms/regularizers/perception.py)."""


import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from terms._perception_helpers import fields, run

from rlobj import (
    double_entropy,
)

# ------------------------------------------------------------------------------------------
# PAPO double entropy
# ------------------------------------------------------------------------------------------


def test_double_entropy_hand_values_and_gradient():
    logp = torch.tensor([[-1.0, -3.0]], requires_grad=True)
    logp_perturbed = torch.tensor([[-2.0, -2.0]])
    out = run(double_entropy(eta_orig=0.05, eta_perturbed=0.03), logp, torch.ones(1, 2, dtype=torch.bool),
              logp_perturbed=logp_perturbed)
    torch.testing.assert_close(out.loss, torch.tensor(0.05 * 2.0 + 0.03 * 2.0))
    out.loss.backward()
    # minimising eta1 * (-logp) raises the sampled tokens' log-probs: gradient -eta1 / tokens
    torch.testing.assert_close(logp.grad, torch.full((1, 2), -0.05 / 2))
    torch.testing.assert_close(out.metrics["perception/entropy_orig"], torch.tensor(2.0))


def test_double_entropy_perturbed_part_is_a_constant_when_detached():
    f = fields(2, 3, 5)
    logp = f["logp"].clone().requires_grad_(True)
    only_perturbed = run(double_entropy(eta_orig=0.0, eta_perturbed=0.5), logp, f["mask"],
                         logp_perturbed=f["logp_perturbed"].clone().requires_grad_(True))
    only_perturbed.loss.backward()
    assert logp.grad is None or float(logp.grad.abs().max()) == 0.0
    zero = run(double_entropy(0.0, 0.0), f["logp"], f["mask"], logp_perturbed=f["logp_perturbed"])
    assert float(zero.loss) == 0.0


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), eta1=st.floats(0, 1), eta2=st.floats(0, 1))
def test_double_entropy_matches_loop(seed, eta1, eta2):
    f = fields(3, 4, seed)
    out = run(double_entropy(eta1, eta2), f["logp"].double(), f["mask"], logp_perturbed=f["logp_perturbed"].double())
    total, count = 0.0, 0
    for i in range(3):
        for t in range(4):
            if f["mask"][i, t]:
                total += -eta1 * float(f["logp"][i, t]) - eta2 * float(f["logp_perturbed"][i, t])
                count += 1
    assert abs(float(out.loss) - total / count) < 1e-6
