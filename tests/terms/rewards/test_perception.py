"""VPPO visual dependency (rlobj/terms/rewards/perception.py)."""

import math

import pytest
import torch
from batches import make_batch
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError
from terms._perception_helpers import k3_loop

from rlobj import (
    Objective,
    clip_ratio,
    group_zscore,
    visual_dependency_score,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.rewards import visual_dependency

# ------------------------------------------------------------------------------------------
# VPPO visual dependency
# ------------------------------------------------------------------------------------------


def test_visual_dependency_hand_values():
    logp_old = torch.tensor([[-1.0, -1.0, -1.0, -1.0]])
    logp_perturbed = torch.tensor([[-1.0, -2.0, -0.5, -40.0]])
    # d = 0, -1, 0.5, clamp(-39) = -20
    expected = [0.0, math.exp(-1) + 1 - 1, math.exp(0.5) - 0.5 - 1, math.exp(-20) + 20 - 1]
    expected[3] = 10.0  # S clamped to [0, 10]
    got = visual_dependency(logp_perturbed, logp_old)
    torch.testing.assert_close(got[0], torch.tensor(expected), atol=1e-6, rtol=1e-6)
    masked = visual_dependency(logp_perturbed, logp_old, torch.tensor([[True, True, False, False]]))
    assert masked[0, 2:].tolist() == [0.0, 0.0]


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 30.0))
def test_visual_dependency_matches_loop_and_bounds(seed, scale):
    generator = torch.Generator().manual_seed(seed)
    logp_old = -scale * torch.rand(3, 5, generator=generator, dtype=torch.float64)
    logp_perturbed = -scale * torch.rand(3, 5, generator=generator, dtype=torch.float64)
    mask = torch.rand(3, 5, generator=generator) < 0.8
    got = visual_dependency(logp_perturbed, logp_old, mask)
    torch.testing.assert_close(got, k3_loop(logp_old, logp_perturbed, mask))
    assert bool((got >= 0).all()) and bool((got <= 10).all())
    assert float(visual_dependency(logp_old, logp_old, mask).abs().max()) == 0.0


def test_visual_dependency_score_writes_extras():
    batch = make_batch([2, 2], [3, 1, 2, 3], seed=3)
    term = visual_dependency_score()
    out = Objective(group_zscore() >> term >> clip_ratio())(**batch)
    expected = visual_dependency(batch["extras"]["logp_perturbed"], batch["logp_old"], batch["mask"])
    torch.testing.assert_close(out.state.extras["visual_dependency"], expected)
    assert term.stage == "batch" and "extras:visual_dependency" in term.slots_written()


def test_visual_dependency_bad_input():
    # the type checker (on in tests) or the function's own check names the argument
    with pytest.raises((RlobjInputError, TypeCheckError), match="logp_old"):
        visual_dependency(torch.zeros(2, 3), torch.zeros(2, 4))
    batch = make_batch([2], [2, 2])
    del batch["extras"]["logp_perturbed"]
    with pytest.raises(RlobjInputError, match=r"extras\['logp_perturbed'\].*perception_forward"):
        Objective(group_zscore() >> visual_dependency_score() >> clip_ratio())(**batch)
