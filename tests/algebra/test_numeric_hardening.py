"""Numbers a user can pass wrongly: non-finite extras, huge rewards, lists instead of tensors."""

import math

import pytest
import torch

from rlobj import grpo, truncated_is
from rlobj.algebra import Objective
from rlobj.ops.errors import RlobjInputError


def _batch(rewards, **extra):
    logp = torch.log(torch.full((4, 3), 0.5))
    return dict(logp=logp, logp_old=logp.clone(), mask=torch.ones(4, 3, dtype=torch.bool),
                rewards=rewards, group_ids=torch.tensor([0, 0, 1, 1]), **extra)


def test_nan_in_an_extra_a_term_reads_is_an_error_naming_it():
    rollout = torch.log(torch.full((4, 3), 0.5))
    rollout[1, 2] = math.nan
    objective = Objective(grpo >> truncated_is())
    with pytest.raises(RlobjInputError, match=r"extras\['logp_rollout'\]: expected finite values, got nan at index \(1, 2\)"):
        objective(**_batch(torch.tensor([1.0, 0.0, 1.0, 0.0]), extras={"logp_rollout": rollout}))
    # padding positions may hold anything (they never reach the loss)
    batch = _batch(torch.tensor([1.0, 0.0, 1.0, 0.0]), extras={"logp_rollout": rollout})
    batch["mask"][1, 2] = False
    assert torch.isfinite(objective(**batch).loss)


@pytest.mark.parametrize("scale", [1.0, 1e20, 1e30, 1e37])
def test_huge_finite_rewards_give_the_same_advantages_as_small_ones(scale):
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25])
    small = Objective(grpo)(**_batch(rewards)).state.advantages
    large = Objective(grpo)(**_batch(rewards * scale)).state.advantages
    assert torch.isfinite(large).all() and small.abs().sum() > 0
    torch.testing.assert_close(large, small, rtol=1e-5, atol=1e-6)


def test_rewards_beyond_the_stated_range_are_a_clear_error():
    with pytest.raises(RlobjInputError, match=r"rewards: \|reward\| must be <= 8.51e\+37 .* got 3e\+38"):
        Objective(grpo)(**_batch(torch.tensor([3e38, 0.0, 1.0, 0.0])))


def test_lists_are_accepted_and_other_types_refused_naming_the_field():
    from_list = Objective(grpo)(**_batch([1.0, 0.0, 1, 0]))
    from_tensor = Objective(grpo)(**_batch(torch.tensor([1.0, 0.0, 1.0, 0.0])))
    torch.testing.assert_close(from_list.loss, from_tensor.loss)
    batch = _batch(torch.tensor([1.0, 0.0, 1.0, 0.0]))
    batch["group_ids"] = [0, 0, 1, 1]
    torch.testing.assert_close(Objective(grpo)(**batch).loss, from_tensor.loss)
    with pytest.raises(RlobjInputError, match="rewards: expected a tensor .*got str"):
        Objective(grpo)(**_batch("1 0 1 0"))
    with pytest.raises(RlobjInputError, match="rewards: expected a tensor or a \\(nested\\) list of numbers"):
        Objective(grpo)(**_batch([1.0, "x", 1.0, 0.0]))
    with pytest.raises(RlobjInputError, match=r"rewards: expected shape \(batch\)"):
        Objective(grpo)(**_batch([[1.0, 0.0], [1.0, 0.0]]))
