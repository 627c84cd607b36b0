"""The turn fields' provider (rlobj/train/providers/turns.py): the multi-turn sampler records them;
a batch from any other sampler gets an error naming the missing fields and the sampler to use."""

import pytest
from train.transforms._scripted import make_batch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.providers.base import PROVIDERS
from rlobj.train.providers.turns import TurnFields


def test_it_provides_the_three_turn_fields_and_is_registered():
    assert set(TurnFields.provides) == {"extras:turn_ids", "extras:turn_rewards", "extras:observation_mask"}
    assert TurnFields in PROVIDERS.values()


def test_missing_fields_are_named_with_the_sampler_that_records_them():
    provider = TurnFields()
    provider.needed = frozenset({"extras:turn_ids", "extras:observation_mask"})
    batch = make_batch([{"id": 0}], [[5, 7]], [0], extras={"observation_mask": object()})
    with pytest.raises(RlobjInputError, match=r"^extras:turn_ids: recorded by the multi-turn sampler "
                                              r"\(sampler: \{multi_turn: \{environment: \.\.\.\}\}\)"):
        provider.batch(None, batch, {})
