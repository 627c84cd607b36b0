"""Checks of a parsed ``rlobj`` configuration that run before any class is built or model loaded.

:func:`check_config` walks the parsed configuration and returns the first problem as one line
naming the key and the cause:

* a ``class_path`` that does not import (a misspelt verifier, callback or task class): the
  import error, e.g. ``model.verifier.class_path: cannot import 'rlobj.train.ExactAnswr'
  (AttributeError: module 'rlobj.train' has no attribute 'ExactAnswr')``;
* a reward function of :class:`~rlobj.train.scorers.RewardFunctions` (``init_args.funcs``) that
  does not import;
* a ``model_path`` that is neither a local model directory nor (with ``HF_HUB_OFFLINE=1``) a
  Hub id in the local cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlobj.ops.errors import RlobjInputError, import_dotted

__all__ = ["check_config", "check_class_path", "check_model_path"]


def _children(node: Any) -> Iterator[tuple[str, Any]]:
    if type(node).__name__ == "NestedArg":  # jsonargparse's leftover of a value it could not resolve
        yield str(node.key), node.val
    elif hasattr(node, "__dict__") and type(node).__name__ == "Namespace":
        yield from vars(node).items()
    elif isinstance(node, dict):
        yield from ((str(k), v) for k, v in node.items())
    elif isinstance(node, (list, tuple)):
        yield from ((f"[{i}]", v) for i, v in enumerate(node))


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in _children(node):
        path = f"{prefix}{key}" if key.startswith("[") or not prefix else f"{prefix}.{key}"
        yield path, value
        yield from _walk(value, path)


def check_class_path(key: str, path: str) -> str | None:
    """None when ``path`` (``package.module.Name``) imports, else the problem naming ``key``
    (:func:`rlobj.ops.errors.import_dotted`'s message)."""
    try:
        import_dotted(path, key)
    except RlobjInputError as error:
        return str(error)
    return None


def check_model_path(key: str, path: str) -> str | None:
    """None when ``path`` is a model directory, or a Hub id that can be loaded, else the problem."""
    local = Path(os.path.expanduser(path))
    if local.is_dir():
        if not (local / "config.json").is_file():
            return f"{key}: {path!r} has no config.json (not a Hugging Face model directory)"
        return None
    if local.exists():
        return f"{key}: {path!r} is a file; expected a model directory or a Hub model id"
    if os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") != 1:
        return f"{key}: no such model directory {path!r}"
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(path, "config.json"), str):
            return (f"{key}: {path!r} is not a local directory and not in the local Hugging Face cache "
                    "(HF_HUB_OFFLINE=1: unset it to download, or give a local directory)")
    return None


def check_config(config: Any) -> str | None:
    """The first problem of a parsed configuration (see the module docstring), or None."""
    for key, value in _walk(config):
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "class_path" and isinstance(value, str):
            problem = check_class_path(key, value)
        elif key.endswith("init_args.funcs") and isinstance(value, (list, tuple)):  # RewardFunctions
            problem = next((p for i, f in enumerate(value) if isinstance(f, str)
                            for p in [check_class_path(f"{key}[{i}]", f)] if p), None)
        elif leaf == "model_path" and isinstance(value, str) and value:
            problem = check_model_path(key, value)
        else:
            problem = None
        if problem is not None:
            return problem
    return None
