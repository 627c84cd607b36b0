"""Model locations: a local directory, or a Hugging Face hub id found in the local cache."""

from pathlib import Path

__all__ = ["resolve_model_path"]


def resolve_model_path(model_path: str | Path) -> Path:
    """The local directory of ``model_path``: the directory itself, or the cached snapshot of a
    hub id (``Qwen/Qwen2.5-Math-1.5B``) in the local Hugging Face cache (``HF_HUB_CACHE``).

    Nothing is downloaded: a hub id that is not in the cache raises ``ValueError`` naming it.
    """
    path = Path(model_path)
    if path.is_dir():
        return path
    name = str(model_path)
    if name.count("/") != 1 or name.startswith(("/", ".")):
        raise ValueError(f"model_path: {name!r} is neither a model directory nor a hub id (org/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as error:
        raise ValueError(f"model_path: {name!r} is not a directory and not in the local Hugging Face cache "
                         f"(nothing is downloaded at run time; download it first or give a directory)") from error
