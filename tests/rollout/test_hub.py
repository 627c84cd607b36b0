"""resolve_model_path: directories as they are, hub ids from the local cache, nothing downloaded."""

import pytest

from rlobj.rollout import resolve_model_path


def _cache_with(tmp_path, repo: str, revision: str = "0123456789abcdef0123456789abcdef01234567"):
    """A Hugging Face hub cache laid out as huggingface_hub writes it, holding one snapshot."""
    root = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "qwen2"}')
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    return tmp_path / "hub", snapshot


def test_directory_is_returned_as_is(tmp_path):
    assert resolve_model_path(tmp_path) == tmp_path


def test_hub_id_resolves_to_the_cached_snapshot(tmp_path, monkeypatch):
    cache, snapshot = _cache_with(tmp_path, "org/tiny-model")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    assert resolve_model_path("org/tiny-model") == snapshot


def test_missing_hub_id_and_bad_paths_are_named(tmp_path, monkeypatch):
    cache, _ = _cache_with(tmp_path, "org/tiny-model")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    with pytest.raises(ValueError, match="'org/other' is not a directory and not in the local Hugging Face cache"):
        resolve_model_path("org/other")
    with pytest.raises(ValueError, match="neither a model directory nor a hub id"):
        resolve_model_path(str(tmp_path / "missing" / "dir"))
