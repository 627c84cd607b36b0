"""R3's filter (rlobj/train/transforms/r3.py, DRO section 4.2.2) as a transform: the difficult groups, then
the least varying ones, dropped by hand; bad input named."""

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Score
from rlobj.train.transforms.r3 import R3Filter


def _batch(ranks: list[list[int]], logp: list[list[float]]) -> Batch:
    from tests.train._helpers import synthetic_rollout, tiny_module

    rollout = synthetic_rollout(tiny_module(), groups=len(ranks) // 2, group_size=2)
    scores = [Score(reward=0.0, fields={"r3_ref_ranks": r, "r3_ref_logp": lp}) for r, lp in zip(ranks, logp)]
    return Batch(rollout=rollout, records=[{"prompt": str(b)} for b in range(len(ranks))], scores=scores)


def test_r3_filter_drops_difficult_then_least_varying_groups_by_hand():
    # stage 1 (rho 0.5 -> the largest rank of 2): group 0 best row 3 <= 4 kept, group 1 best 8 dropped,
    # group 2 best 2 kept; stage 2 (drop half of the 2 left): max sigma 1.0 (group 0) vs 0.25 (group 2)
    batch = _batch(ranks=[[1, 9], [1, 3], [7, 8], [5, 9], [2, 2], [1, 4]],
                   logp=[[-1, -1], [-1, -3], [-1, -5], [-1, -1], [-2, -2], [-2, -2.5]])
    out = R3Filter(top_k=4, rho=0.5, drop_fraction=0.5)(None, batch)
    assert out.rollout.group_ids.tolist() == batch.rollout.group_ids[:2].tolist() and len(out) == 2
    assert out.metrics == {"r3_filter/kept": 1.0, "r3_filter/dropped_difficult": 1.0,
                           "r3_filter/dropped_low_variation": 1.0}
    only_stage_1 = R3Filter(top_k=4, rho=0.5)(None, batch)
    assert len(only_stage_1) == 4 and only_stage_1.metrics["r3_filter/dropped_low_variation"] == 0.0
    only_stage_2 = R3Filter(drop_fraction=0.4)(None, batch)  # floor(0.4 * 3) = 1 group: group 2 (0.25)
    assert only_stage_2.metrics["r3_filter/kept"] == 2.0 and len(only_stage_2) == 4


def test_r3_filter_bad_input_is_an_error_naming_it():
    with pytest.raises(RlobjInputError, match="give top_k .* or drop_fraction"):
        R3Filter()
    with pytest.raises(RlobjInputError, match="R3Filter.rho"):
        R3Filter(top_k=3, rho=0)
    with pytest.raises(RlobjInputError, match="R3Filter.drop_fraction"):
        R3Filter(drop_fraction=1.0)
    batch = _batch(ranks=[[1], [2]], logp=[[-1.0], [-2.0]])
    batch.scores[1] = Score(reward=0.0)
    with pytest.raises(RlobjInputError, match="row 1 has no score field 'r3_ref_ranks'.*R3Reward"):
        R3Filter(top_k=3)(None, batch)
