"""The table of names that moved out of the ops layer (rlobj/ops/vocab/moved.py): every entry resolves
to the object at its new place, with a DeprecationWarning naming the old and the new place."""

import importlib

import pytest

from rlobj.ops.vocab.moved import MOVED, moved


@pytest.mark.parametrize("name", sorted(MOVED))
def test_every_entry_resolves_to_its_new_place_and_warns(name):
    module, attribute = MOVED[name]
    assert module.startswith("rlobj.terms.")  # paper math lives with the terms, not in ops
    expected = getattr(importlib.import_module(module), attribute)
    with pytest.warns(DeprecationWarning) as record:
        assert moved(name, f"old.place.{name}") is expected
    message = str(record[0].message)
    assert message == f"old.place.{name} moved: use {module}.{attribute} (the rlobj.ops.vocab name will be removed)"


def test_the_table_names_the_four_moved_quantities():
    assert sorted(MOVED) == ["ProxyLogProb", "TopPEntropy", "proxy_logp", "top_p_entropy"]


def test_an_unknown_name_is_a_key_error():
    with pytest.raises(KeyError):
        moved("entropy", "rlobj.ops.vocab.entropy")
