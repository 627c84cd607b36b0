"""Loading checkpoints safely: ``weights_only=True`` and errors that name the file and the fault.

Loading with ``weights_only=False`` unpickles arbitrary objects, so a crafted file runs code. Every
checkpoint rlobj loads itself goes through :func:`load_checkpoint_file` (torch's weights-only
unpickler: tensors, containers, numbers, strings); ``rlobj fit --ckpt_path`` resumes with
Lightning's loader under ``weights_only=True`` after :func:`check_checkpoint_file`.
"""

import os
import pickle
import zipfile

import torch

from rlobj.ops.errors import RlobjInputError

__all__ = ["check_checkpoint_file", "load_checkpoint_file"]


def check_checkpoint_file(path: str, key: str = "checkpoint") -> None:
    """Raise naming ``path`` (under the argument name ``key``) unless it is a readable, complete
    torch checkpoint archive: missing, empty, not a zip archive (truncated files lose the zip
    directory at their end), or a member whose CRC does not match (corrupted bytes).

    Example:
        >>> import tempfile
        >>> empty = tempfile.NamedTemporaryFile(suffix=".ckpt")
        >>> check_checkpoint_file(empty.name, "ckpt_path")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rlobj.ops.errors.RlobjInputError: ckpt_path: checkpoint '...' is empty (0 bytes)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: no such checkpoint file {path!r}")
    size = os.path.getsize(path)
    if size == 0:
        raise RlobjInputError(f"{key}: checkpoint {path!r} is empty (0 bytes)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise RlobjInputError(
            f"{key}: checkpoint {path!r} ({size} bytes) is truncated or not a torch checkpoint "
            f"(no complete zip archive: {error})"
        ) from error
    if damaged is not None:
        raise RlobjInputError(
            f"{key}: checkpoint {path!r} is corrupted: member {damaged!r} fails its CRC check"
        )


def load_checkpoint_file(path: str, key: str = "checkpoint") -> dict:
    """Load a checkpoint dict with ``torch.load(weights_only=True)`` on the CPU.

    Raises :class:`~rlobj.ops.errors.RlobjInputError` naming ``path`` when the file is empty,
    truncated or corrupted (see :func:`check_checkpoint_file`), holds objects outside torch's
    weights-only allow-list (a pickled class or function: refused, never run), or is not a dict.
    """
    check_checkpoint_file(path, key)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
        raise RlobjInputError(
            f"{key}: checkpoint {path!r} holds objects outside torch's weights-only allow-list; "
            f"refused to load it (that would run code from the file): "
            f"{(named or lines or [repr(error)])[0][:300]}"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise RlobjInputError(f"{key}: checkpoint {path!r} cannot be read: {error}") from error
    if not isinstance(checkpoint, dict):
        raise RlobjInputError(
            f"{key}: checkpoint {path!r} holds a {type(checkpoint).__name__}, expected a dict"
        )
    return checkpoint
