r"""Load or build the policy network and its tokenizer from :class:`~rlobj.train.config.PolicyConfig`.

* ``model_path``: a local Hugging Face directory. A causal LM loads with
  ``AutoModelForCausalLM``; a vision-language model (an image-text-to-text config: LLaVA,
  Qwen2-VL, ...) with ``AutoModelForImageTextToText`` and its ``AutoProcessor``.
* ``tiny_vlm``: a tiny random vision-language model built here
  (:func:`rlobj.rollout.tiny_vlm.build_tiny_vlm`, e.g. ``{kind: llava, hidden_size: 64}``).
* otherwise the tiny Qwen2 of ``tiny_model`` with the character tokenizer.

For a vision-language policy the returned tokenizer carries the processor as
``tokenizer.rlobj_processor``; the engine, the samplers, evaluation and the warm-up take it from
there to turn rows with ``images`` into model inputs (:mod:`rlobj.rollout.vision`).
"""

from rlobj.ops.errors import RlobjInputError

__all__ = ["load_policy", "processor_of"]


def processor_of(tokenizer):
    """The processor of a vision-language policy's tokenizer, or None for a text policy."""
    return getattr(tokenizer, "rlobj_processor", None)


def _attach(processor):
    tokenizer = processor.tokenizer
    tokenizer.rlobj_processor = processor
    return tokenizer


def load_policy(hp):
    """``(tokenizer, policy)`` for the settings ``hp`` (a ``PolicyConfig``)."""
    dtype = hp.torch_dtype
    if hp.tiny_vlm is not None:
        from rlobj.rollout.tiny_vlm import build_tiny_vlm

        try:
            model, processor = build_tiny_vlm(dtype=dtype, **dict(hp.tiny_vlm))
        except TypeError as error:
            raise RlobjInputError(f"policy.tiny_vlm: {error}") from error
        return _attach(processor), model
    if hp.model_path is None:
        from rlobj.ops.tokenizer import build_char_tokenizer
        from rlobj.rollout import build_tiny_qwen2

        tokenizer = build_char_tokenizer(hp.tokenizer_chars)
        return tokenizer, build_tiny_qwen2(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                                           pad_token_id=tokenizer.pad_token_id, dtype=dtype,
                                           **dict(hp.tiny_model or {}))
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    from rlobj.ops.tokenizer import load_tokenizer  # rlobj's character tokenizer as saved

    model_type = AutoConfig.from_pretrained(hp.model_path).model_type
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(hp.model_path)
        return _attach(processor), AutoModelForImageTextToText.from_pretrained(hp.model_path, dtype=dtype)
    return load_tokenizer(hp.model_path), AutoModelForCausalLM.from_pretrained(hp.model_path, dtype=dtype)
