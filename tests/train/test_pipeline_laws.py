"""The algebra's laws hold through the trainer, for every registered term and preset.

One RL update on the same rollout batch (25 rows in 5 groups of 5, uneven lengths, float64 tiny
model, SGD with lr 1 so the weight change is minus the gradient) with micro-batches of 25, 13 and 7
rows (groups split across micro-batches) gives the same weights within 1e-6, with ppo_epochs 1
and 2. Every provider, the mini-batch statistics and the global normaliser are exercised.
"""

import pytest

from .pipeline_cases import NAMES, law_gaps

TOLERANCE = 1e-6


@pytest.mark.parametrize("ppo_epochs", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_micro_batch_size_changes_no_update(name, ppo_epochs):
    gaps = law_gaps(name, ppo_epochs)
    assert max(gaps) <= TOLERANCE, f"{name}: max weight difference for K = 1, 2, 4: {gaps}"
