r"""Tiny, randomly initialised vision-language models built locally (nothing downloaded).

:func:`build_tiny_vlm` returns a ``transformers`` image-text-to-text model and its processor:

* ``kind="llava"``: ``LlavaForConditionalGeneration`` (a CLIP vision tower, a two-layer
  projector, a Qwen2 decoder) with a ``LlavaProcessor`` (a PIL ``CLIPImageProcessor`` that
  resizes to ``image_size``, the character tokenizer of :func:`rlobj.ops.tokenizer.build_char_tokenizer`
  plus an ``<image>`` token, and a chat template);

A Qwen2-VL-style tiny model is not offered: on this machine (transformers 5.25 without
torchvision) ``Qwen2VLProcessor`` cannot be built (its video processor is a torchvision-only
placeholder: ``AttributeError: type object 'VIDEO_PROCESSOR_MAPPING' has no attribute
'_extra_content'``). The trainer's forwards still leave positions to models that compute their
own (:func:`rlobj.rollout.vision.own_positions`), for a Qwen2-VL the user has locally.

The chat template renders a conversation as its content parts in order (an image part is the
image placeholder, a text part its text) and ends with ``" answer:"`` when a generation prompt is asked
for. Token ids, special tokens and weights depend only on the arguments (``seed``).
"""

from __future__ import annotations

import torch

__all__ = ["VISION_CHARS", "CHAT_TEMPLATE", "VLM_KINDS", "build_tiny_vlm"]

#: the tiny VLMs' characters: lower-case letters, digits, space and punctuation
VISION_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 ,.:;?=+-()[]'"
VLM_KINDS = ("llava",)

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ image_marker }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %} answer:{% endif %}")


def _tokenizer(chars: str, specials: list[str]):
    from rlobj.rollout.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer(chars)
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.rlobj_chars = chars
    return tokenizer


def _template(marker: str) -> str:
    return CHAT_TEMPLATE.replace("{{ image_marker }}", marker)


def build_tiny_vlm(kind: str = "llava", image_size: int = 28, patch_size: int = 14, hidden_size: int = 64,
                   layers: int = 2, heads: int = 2, vision_hidden_size: int = 32, vision_layers: int = 1,
                   chars: str = VISION_CHARS, seed: int = 0, dtype: torch.dtype = torch.float32):
    r"""A tiny random vision-language model and its processor: ``(model, processor)``.

    Args:
        kind: ``"llava"`` (the one kind built here).
        image_size: images are resized to ``image_size x image_size`` pixels.
        patch_size: the vision tower's patch side in pixels (PAPO blackens patches of this size).
        hidden_size, layers, heads: the decoder (``hidden_size / heads`` per head).
        vision_hidden_size, vision_layers: the vision tower.
        chars: characters of the tokenizer.
        seed: seed of the weights.
        dtype: parameter dtype.

    Example:
        >>> model, processor = build_tiny_vlm("llava")
        >>> type(model).__name__, processor.tokenizer.convert_ids_to_tokens(model.config.image_token_id)
        ('LlavaForConditionalGeneration', '<image>')
    """
    from rlobj.ops.errors import RlobjInputError

    if kind not in VLM_KINDS:
        raise RlobjInputError(f"tiny_vlm.kind: expected one of {VLM_KINDS}, got {kind!r}")
    for name, value in (("image_size", image_size), ("patch_size", patch_size), ("hidden_size", hidden_size),
                        ("layers", layers), ("heads", heads), ("vision_hidden_size", vision_hidden_size),
                        ("vision_layers", vision_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RlobjInputError(f"tiny_vlm.{name}: expected an int >= 1, got {value!r}")
    if hidden_size % heads or vision_hidden_size % heads:
        raise RlobjInputError(f"tiny_vlm: hidden_size {hidden_size} and vision_hidden_size {vision_hidden_size} "
                              f"must be multiples of heads {heads}")
    model, processor = _llava(image_size, patch_size, hidden_size, layers, heads, vision_hidden_size, vision_layers,
                             chars, seed)
    model = model.to(dtype)
    model.eval()
    return model, processor


def _text_config(tokenizer, hidden_size: int, layers: int, heads: int) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)


def _seeded(factory):
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        return factory()


def _llava(image_size, patch_size, hidden_size, layers, heads, vision_hidden_size, vision_layers, chars, seed):
    from transformers import (
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _tokenizer(chars, ["<image>"])
    images = CLIPImageProcessorPil(size={"height": image_size, "width": image_size}, do_center_crop=False,
                                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token="<image>", chat_template=_template("<image>"))
    vision = CLIPVisionConfig(hidden_size=vision_hidden_size, intermediate_size=2 * vision_hidden_size,
                              num_hidden_layers=vision_layers, num_attention_heads=heads, image_size=image_size,
                              patch_size=patch_size, projection_dim=vision_hidden_size)
    config = LlavaConfig(vision_config=vision, text_config=Qwen2Config(**_text_config(tokenizer, hidden_size, layers,
                                                                                       heads)),
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         tie_word_embeddings=False)
    config.eos_token_id, config.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id

    def make():
        torch.manual_seed(seed)
        return LlavaForConditionalGeneration(config)

    return _seeded(make), processor
