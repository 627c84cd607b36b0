"""DRO's R3 data filter (arXiv 2506.13351 v1, section 4.2.2), hand-computed cases."""

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.r3_filters import r3_difficulty_keep, r3_max_sigma, r3_variation_keep


def test_max_sigma_and_variation_filter_by_hand():
    logp = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, -3.0, 0.0],     # group 7: sigma = (0, 1)      -> 1
                         [-2.0, -2.0, -1.0], [-2.0, -2.5, -2.0],   # group 3: sigma = (0, .25, .5) -> .5
                         [-4.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])  # group 5: sigma = (1.5, 0, 0)  -> 1.5
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]], dtype=torch.bool)
    groups = torch.tensor([7, 7, 3, 3, 5, 5])
    assert r3_max_sigma(logp, mask, groups) == pytest.approx({7: 1.0, 3: 0.5, 5: 1.5})
    # 3 groups: drop floor(0.4 * 3) = 1 (group 3), floor(0.7 * 3) = 2 (groups 3 and 7), 0 -> none
    assert r3_variation_keep(logp, mask, groups, 0.4).tolist() == [True, True, False, False, True, True]
    assert r3_variation_keep(logp, mask, groups, 0.7).tolist() == [False, False, False, False, True, True]
    assert r3_variation_keep(logp, mask, groups, 0.0).all()


def test_variation_filter_drops_the_later_group_on_ties():
    logp = torch.tensor([[-1.0], [-2.0], [-1.0], [-2.0]])  # both groups: sigma = 0.5
    keep = r3_variation_keep(logp, torch.ones(4, 1, dtype=torch.bool), torch.tensor([0, 0, 1, 1]), 0.5)
    assert keep.tolist() == [True, True, False, False]


def test_difficulty_filter_by_hand():
    ranks = torch.tensor([[1, 2, 9, 4], [3, 3, 3, 0],       # group 0: rho=.5 -> means (13/2, 3 of [3,3,3]: ceil(1.5)=2 -> 3)
                          [6, 1, 1, 1], [8, 7, 1, 1]])      # group 1: means (6/2 + 1/2 = 3.5, 7.5)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    groups = torch.tensor([0, 0, 1, 1])
    # min over rows: group 0 -> 3, group 1 -> 3.5
    assert r3_difficulty_keep(ranks, mask, groups, rho=0.5, top_k=3).tolist() == [True, True, False, False]
    assert r3_difficulty_keep(ranks, mask, groups, rho=0.5, top_k=3.5).all()
    # rho = 1: plain mean of the ranks: group 0 -> min(4, 3) = 3, group 1 -> min(2.25, 4.25) = 2.25
    assert r3_difficulty_keep(ranks, mask, groups, rho=1.0, top_k=2.5).tolist() == [False, False, True, True]


def test_r3_filters_reject_bad_input():
    ones = torch.ones(2, 2, dtype=torch.bool)
    groups = torch.tensor([0, 0])
    with pytest.raises(RlobjInputError, match="drop_fraction"):
        r3_variation_keep(torch.zeros(2, 2), ones, groups, 1.0)
    with pytest.raises(RlobjInputError, match="rho"):
        r3_difficulty_keep(torch.ones(2, 2, dtype=torch.long), ones, groups, rho=0.0, top_k=2)
    with pytest.raises(RlobjInputError, match="top_k"):
        r3_difficulty_keep(torch.ones(2, 2, dtype=torch.long), ones, groups, rho=0.5, top_k=0.5)
    with pytest.raises(RlobjInputError, match="ranks start at 1"):
        r3_difficulty_keep(torch.zeros(2, 2, dtype=torch.long), ones, groups, rho=0.5, top_k=2)
    with pytest.raises(RlobjInputError, match="mask expected shape"):
        r3_max_sigma(torch.zeros(2, 2), torch.ones(2, 3, dtype=torch.bool), groups)
    with pytest.raises(RlobjInputError, match="equal masks"):
        r3_max_sigma(torch.zeros(2, 2), torch.tensor([[1, 1], [1, 0]], dtype=torch.bool), groups)
    with pytest.raises(RlobjInputError, match="at least one reference token"):
        r3_max_sigma(torch.zeros(2, 2), torch.tensor([[1, 1], [0, 0]], dtype=torch.bool), groups)
