r"""Images through the rollout: multimodal prompts, the per-row pixel inputs a batch keeps.

A dataset row is multimodal when it carries ``images``: a list of image file paths or
``H x W x 3`` ``uint8`` arrays (one entry per image; a video is its list of frames). The prompt is
``messages`` (a chat conversation whose content parts include one ``{"type": "image"}`` per
image) or ``prompt`` (a string: the images come first, then the text, in one user turn). The
model's processor and chat template turn the row into token ids (image placeholders expanded)
and pixel inputs (:func:`encode_record`).

:class:`VisionInputs` holds those pixel inputs **per row** of a
:class:`~rlobj.rollout.RolloutBatch` (``rollout.vision``): the engine samples with them, and
every later forward (old / reference log-probs, the training forward, a perturbed-image
forward) passes the rows' inputs again (:meth:`VisionInputs.model_inputs`). Rows of one group
share the same tensors (no copy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError

__all__ = ["VisionInputs", "load_image", "record_images", "is_multimodal", "encode_record", "encode_records",
           "own_positions", "vision_of", "image_token_ids", "TEXT_KEYS"]

#: processor outputs that are token-level (rebuilt from the batch's ids and masks), not pixel inputs
TEXT_KEYS = frozenset({"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids"})


@dataclass(frozen=True)
class VisionInputs:
    r"""The pixel inputs of each row of a batch: ``rows[b]`` maps model keyword names
    (``pixel_values``, ``image_grid_thw``, ``image_sizes``, ...) to row ``b``'s tensors, their
    first dimension running over the row's images (or image patches, for Qwen2-VL).

    :meth:`model_inputs` concatenates the chosen rows' tensors along that dimension: what a
    Hugging Face vision-language model takes next to ``input_ids`` whose image placeholder
    tokens are already expanded.
    """

    rows: tuple[dict[str, Tensor], ...]

    def __post_init__(self):
        keys = {frozenset(r) for r in self.rows}
        if len(keys) > 1:
            raise RlobjInputError(f"VisionInputs: every row needs the same pixel inputs, got {sorted(map(sorted, keys))}")

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, rows) -> VisionInputs:
        """Rows ``rows`` (a slice, a list of ints or an integer tensor), in that order."""
        if isinstance(rows, slice):
            return VisionInputs(self.rows[rows])
        index = rows.tolist() if isinstance(rows, Tensor) else list(rows)
        return VisionInputs(tuple(self.rows[int(i)] for i in index))

    def repeat_interleave(self, n: int) -> VisionInputs:
        """Each row ``n`` times in a row (the ``n`` samples of a prompt share its tensors)."""
        return VisionInputs(tuple(r for r in self.rows for _ in range(n)))

    def to(self, device) -> VisionInputs:
        return VisionInputs(tuple({k: v.to(device) for k, v in r.items()} for r in self.rows))

    def model_inputs(self, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """The rows' tensors concatenated per key; floating ones cast to ``dtype`` when given."""
        if not self.rows:
            return {}
        out = {}
        for key in self.rows[0]:
            value = torch.cat([r[key] for r in self.rows])
            out[key] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
        return out

    @staticmethod
    def concat(parts: Sequence[VisionInputs | None], lengths: Sequence[int]) -> VisionInputs | None:
        """Rows of several batches in order; None when no part has images (an error when some do)."""
        present = [p is not None for p in parts]
        if not any(present):
            return None
        if not all(present):
            raise RlobjInputError("VisionInputs.concat: some batches carry images and some do not")
        for part, length in zip(parts, lengths, strict=True):
            if len(part) != length:
                raise RlobjInputError(f"VisionInputs.concat: a part has {len(part)} rows of images for {length} rows")
        return VisionInputs(tuple(r for p in parts for r in p.rows))


def load_image(image, where: str = "images[0]"):
    """One image as an ``H x W x 3`` uint8 numpy array: a path (PIL opens it, converted to RGB), or
    an array / tensor of that shape and dtype (a clear error names anything else)."""
    import numpy as np

    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from PIL import Image

        try:
            with Image.open(image) as opened:
                return np.asarray(opened.convert("RGB"))
        except (OSError, ValueError) as error:
            raise RlobjInputError(f"{where}: cannot open image file {image!r} ({error})") from error
    if isinstance(image, Tensor):
        image = image.detach().cpu().numpy()
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image) if isinstance(image, (list, tuple)) or hasattr(image, "__array__") else None
    if array is None or array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        got = f"shape {array.shape}, dtype {array.dtype}" if array is not None else type(image).__name__
        raise RlobjInputError(f"{where}: expected an image path or an H x W x 3 uint8 array, got {got}")
    return array


def is_multimodal(record) -> bool:
    """Whether a dataset row carries images: an ``images`` entry that is not None or an empty
    list (anything else than a list is refused later, naming the row)."""
    if not isinstance(record, dict) or record.get("images") is None:
        return False
    images = record["images"]
    return not (isinstance(images, (list, tuple)) and len(images) == 0)


def record_images(record: dict, index: int = 0) -> list:
    """The row's images as arrays (:func:`load_image`); ``images`` must be a list."""
    images = record.get("images")
    if not isinstance(images, (list, tuple)):
        raise RlobjInputError(f"records[{index}]['images']: expected a list of image paths or arrays, "
                              f"got {type(images).__name__}")
    return [load_image(image, f"records[{index}]['images'][{i}]") for i, image in enumerate(images)]


def _messages(record: dict, images: int, index: int) -> list[dict]:
    messages = record.get("messages")
    if messages is None:
        prompt = record.get("prompt")
        if not isinstance(prompt, str):
            raise RlobjInputError(f"records[{index}]: a row with images needs 'messages' (a conversation) or a "
                                  f"'prompt' string, got {sorted(record)}")
        return [{"role": "user", "content": [{"type": "image"}] * images + [{"type": "text", "text": prompt}]}]
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "content" in m for m in messages):
        raise RlobjInputError(f"records[{index}]['messages']: expected a list of {{role, content}} mappings")
    slots = sum(1 for m in messages if isinstance(m["content"], list)
                for part in m["content"] if isinstance(part, dict) and part.get("type") == "image")
    if slots != images:
        raise RlobjInputError(f"records[{index}]: 'messages' has {slots} image part(s) for {images} image(s)")
    return messages


def encode_record(processor, record: dict, index: int = 0) -> tuple[list[int], dict[str, Tensor]]:
    """A multimodal row through ``processor``: its chat template (with the generation prompt),
    then the processor on the text and images. Returns the prompt's token ids (image placeholders
    expanded) and its pixel inputs (every processor output but :data:`TEXT_KEYS`)."""
    if processor is None:
        raise RlobjInputError(f"records[{index}] carries images, but the policy has no processor: use a "
                              "vision-language policy (policy: {tiny_vlm: {...}} or a model_path with a processor)")
    images = record_images(record, index)
    text = processor.apply_chat_template(_messages(record, len(images), index), add_generation_prompt=True,
                                         tokenize=False)
    encoded = processor(text=[text], images=images, return_tensors="pt")
    ids = encoded["input_ids"][0]
    if "attention_mask" in encoded:
        ids = ids[encoded["attention_mask"][0].bool()]
    pixels = {k: v for k, v in encoded.items() if k not in TEXT_KEYS and isinstance(v, Tensor)}
    return ids.tolist(), pixels


def encode_records(records: Sequence[dict], encode, processor) -> tuple[list[list[int]], VisionInputs | None]:
    """Prompts of ``records`` as token ids and, when they carry images, their :class:`VisionInputs`.

    Text rows go through ``encode(record["prompt"])``; a batch mixing rows with and without
    images is refused (the model call takes pixel inputs for every row or none).
    """
    flags = [is_multimodal(r) for r in records]
    if not any(flags):
        for index, record in enumerate(records):
            if not isinstance(record, dict) or "prompt" not in record:
                raise RlobjInputError(f"records[{index}]: expected a mapping with a 'prompt', got {record!r}")
        return [encode(r["prompt"]) for r in records], None
    if not all(flags):
        raise RlobjInputError(f"records: rows {[i for i, f in enumerate(flags) if not f]} carry no images while "
                              "others do; one batch is all multimodal or all text")
    ids, rows = [], []
    for index, record in enumerate(records):
        prompt, pixels = encode_record(processor, record, index)
        ids.append(prompt)
        rows.append(pixels)
    return ids, VisionInputs(tuple(rows))


def own_positions(model) -> bool:
    """Whether ``model`` computes its own position ids from the images (Qwen2-VL's multimodal
    rotary positions): the caller then passes none."""
    base = getattr(model, "model", None)
    return hasattr(model, "get_rope_index") or hasattr(base, "get_rope_index")


def image_token_ids(model) -> list[int]:
    """The model config's image / video placeholder token ids (``image_token_id``,
    ``image_token_index``, ``video_token_id``, vision start/end), which a response must not hold."""
    config = model.config
    ids = {getattr(config, name, None) for name in ("image_token_id", "image_token_index", "video_token_id",
                                                     "vision_start_token_id", "vision_end_token_id")}
    return sorted(int(i) for i in ids if isinstance(i, int))


def vision_of(rollout) -> Any:
    """``rollout.vision`` or None (batches built before multimodal rows existed)."""
    return getattr(rollout, "vision", None)
