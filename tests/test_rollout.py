"""The package rlobj.rollout (rlobj/rollout/__init__.py): every public name resolves lazily to the object
its home submodule defines, ``dir()`` lists them, importing a light submodule pulls in no engine, and
an unknown name is an AttributeError."""

import importlib
import subprocess
import sys

import pytest

import rlobj.rollout as rollout


def test_every_public_name_is_its_home_modules_object():
    homes = rollout._HOMES
    assert sorted(homes, key=str.lower) == rollout.__all__
    skip = {"VLLMEngine"} if importlib.util.find_spec("vllm") is None else set()
    for name, home in homes.items():
        if home.endswith("vllm_engine") and skip:
            continue
        assert getattr(rollout, name) is getattr(importlib.import_module(home), name), name
    assert set(homes) <= set(dir(rollout))


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="module 'rlobj.rollout' has no attribute 'NoSuchEngine'"):
        rollout.NoSuchEngine  # noqa: B018


def test_importing_the_filters_does_not_import_transformers():
    code = "import sys, rlobj.rollout.filters; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
