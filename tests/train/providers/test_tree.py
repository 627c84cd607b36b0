"""The default node values (rlobj/train/providers/tree.py) for batches that did not come from a tree
search: every response token of row i gets s (r_i - b); a bad scale is named."""

import pytest
import torch
from train.transforms._scripted import make_batch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.providers.base import PROVIDERS
from rlobj.train.providers.tree import TreeValues


def test_values_by_hand_on_every_response_token():
    batch = make_batch([{"id": 0}, {"id": 1}], [[5, 7, 7], [6]], [0, 0])
    out = TreeValues().batch(None, batch, {"rewards": torch.tensor([1.0, 0.0])})
    # s = 2, b = 0.5: reward 1 -> +1 on its 3 tokens, reward 0 -> -1 on its 1 token, 0 on padding
    assert out["extras:node_values"].tolist() == [[1.0, 1.0, 1.0], [-1.0, 0.0, 0.0]]
    scaled = TreeValues(reward_scale=0.5, reward_baseline=0.0).batch(None, batch, {"rewards": torch.tensor([1.0, 0.25])})
    assert scaled["extras:node_values"].tolist() == [[0.5, 0.5, 0.5], [0.125, 0.0, 0.0]]


def test_registered_for_its_slot_and_bad_scale_named():
    assert PROVIDERS["extras:node_values"] is TreeValues
    with pytest.raises(RlobjInputError, match=r"^TreeValues.reward_scale: expected a number > 0, got 0"):
        TreeValues(reward_scale=0)
