"""The package rlobj.ops.vocab (rlobj/ops/vocab/__init__.py): its exports, and the module-level
``__getattr__`` that still answers the two names that moved to rlobj.terms, with a warning."""

import warnings

import pytest

import rlobj.ops.vocab as vocab
from rlobj.terms.regularizers.lp_reg_proxy import ProxyLogProb
from rlobj.terms.regularizers.siren_entropy import TopPEntropy


def test_every_exported_name_is_there():
    missing = [name for name in vocab.__all__ if not hasattr(vocab, name)]
    assert not missing, missing


@pytest.mark.parametrize(("name", "new"), [("ProxyLogProb", ProxyLogProb), ("TopPEntropy", TopPEntropy)])
def test_moved_names_resolve_with_a_deprecation_warning(name, new):
    with pytest.warns(DeprecationWarning, match=rf"rlobj.ops.vocab.{name} moved: use rlobj.terms.regularizers"):
        assert getattr(vocab, name) is new
    assert name not in vocab.__all__


def test_unknown_names_are_attribute_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning for a name that never existed
        with pytest.raises(AttributeError, match="module 'rlobj.ops.vocab' has no attribute 'NoSuchQuery'"):
            vocab.NoSuchQuery  # noqa: B018
