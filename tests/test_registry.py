"""Shared checks driven by the registry of every public term and preset."""

import dataclasses
import pickle

import pytest
import torch
import yaml
from batches import leaf
from registry_cases import NAMES, complete, defaults, standard_batch

import rlobj
from rlobj import Objective
from rlobj.algebra.term import as_terms
from rlobj.registry import (
    BATCH_FUNCTIONS,
    REGISTRY,
    TERM_FACTORIES,
    build_objective,
    to_config,
)

#: Public names that are not terms (the algebra's own types, errors).
NOT_TERMS = {"VocabView", "Chain", "LossPart", "Normalizer", "Objective", "Output", "State", "Term", "chain",
             "identity", "RlobjBuildError", "RlobjInputError"}


def test_every_public_term_and_preset_is_registered():
    missing = [name for name in rlobj.__all__
               if name not in NOT_TERMS and name not in REGISTRY and name not in BATCH_FUNCTIONS]
    assert not missing, f"public names missing from the registry: {missing}"
    for name in rlobj.__all__:
        assert hasattr(rlobj, name), name


def test_every_registered_name_is_public():
    assert set(REGISTRY) <= set(rlobj.__all__)
    assert set(BATCH_FUNCTIONS) <= set(rlobj.__all__)
    assert all(getattr(rlobj, name) is fn for name, fn in BATCH_FUNCTIONS.items())


@pytest.mark.parametrize("name", NAMES)
def test_builds_from_defaults_and_gives_a_finite_loss(name):
    objective = complete(defaults(name))
    batch = leaf(standard_batch(name))
    out = Objective(objective)(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(batch["logp"].grad).all()
    assert all(torch.isfinite(v).all() for v in out.metrics.values())


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip(name):
    term = defaults(name)
    assert pickle.loads(pickle.dumps(term)) == term


@pytest.mark.parametrize("name", NAMES)
def test_yaml_round_trip(name):
    term = defaults(name)
    text = yaml.safe_dump(to_config(term))
    rebuilt = build_objective(yaml.safe_load(text))
    assert rebuilt == term
    assert as_terms(rebuilt) == as_terms(term)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_accepts_fp32_and_bf16(name, dtype):
    objective = complete(defaults(name))
    batch = standard_batch(name, dtype=dtype)
    out = Objective(objective)(**leaf(batch))
    assert torch.isfinite(out.loss)
    if dtype == torch.float32:
        return
    reference = Objective(objective)(**standard_batch(name))
    # bf16 inputs, same math: close to the fp32 result at bf16 resolution
    assert abs(float(out.loss.float()) - float(reference.loss)) < 0.05 * (1 + abs(float(reference.loss)))


@pytest.mark.parametrize("name", NAMES)
def test_ignores_unknown_extras(name):
    objective = complete(defaults(name))
    batch = standard_batch(name)
    plain = Objective(objective)(**batch)
    noisy = dict(batch)
    noisy["extras"] = {**batch["extras"], "unrelated": torch.randn(8, 5), "note": "hello"}
    torch.testing.assert_close(Objective(objective)(**noisy).loss, plain.loss)


def test_term_factories_are_dataclasses_or_documented_aliases():
    for name, factory in TERM_FACTORIES.items():
        built = factory()
        assert dataclasses.is_dataclass(built), name
        assert built.__doc__ and "$" in type(built).__doc__, f"{name}: docstring needs its formula"
