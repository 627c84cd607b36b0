r"""A character-level tokenizer for the tiny default model, built with ``tokenizers``."""

from collections.abc import Iterable

ADDITION_ALPHABET = "0123456789+="
"""The characters of the default run's prompts and answers (``"12+34="``, ``"46"``)."""


def build_char_tokenizer(
    alphabet: str | Iterable[str] = ADDITION_ALPHABET,
    pad_token: str = "<pad>",
    bos_token: str = "<bos>",
    eos_token: str = "<eos>",
    unk_token: str = "<unk>",
    add_bos: bool = False,
    add_eos: bool = False,
    padding_side: str = "left",
    model_max_length: int = 512,
):
    """Build a ``transformers.PreTrainedTokenizerFast`` with one token per character.

    Vocabulary: ``[pad, bos, eos, unk, *alphabet]`` in that order (so ``pad_token_id == 0``); each
    input character is one token (a ``tokenizers`` ``WordLevel`` model behind a pre-tokenizer that
    isolates every character), characters outside the alphabet become ``unk``, the special token
    strings are recognised in text, and decoding concatenates characters (``Fuse`` decoder).
    ``add_bos`` / ``add_eos`` wrap every encoded sequence (``TemplateProcessing``). Prompts are
    padded on the left by default, as generation needs. Save with ``save_pretrained`` and reload
    with ``AutoTokenizer.from_pretrained``.

    Args:
        alphabet: the characters (a string or an iterable of single characters, no duplicates).

    Example:
        >>> tokenizer = build_char_tokenizer()
        >>> tokenizer("12+34=")["input_ids"]
        [5, 6, 14, 7, 8, 15]
        >>> tokenizer.decode([5, 6, 14, 7, 8, 15, 2], skip_special_tokens=True)
        '12+34='
        >>> len(tokenizer)
        16
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    characters = list(alphabet)
    if not characters:
        raise ValueError(
            "build_char_tokenizer: argument 'alphabet' must hold at least one character, got none"
        )
    for character in characters:
        if not isinstance(character, str) or len(character) != 1:
            raise ValueError(
                f"build_char_tokenizer: argument 'alphabet' must hold single characters, got {character!r}"
            )
    duplicates = sorted({character for character in characters if characters.count(character) > 1})
    if duplicates:
        raise ValueError(
            f"build_char_tokenizer: argument 'alphabet' has duplicate characters {duplicates}"
        )
    specials = [pad_token, bos_token, eos_token, unk_token]
    if len(set(specials)) != 4 or any(len(token) < 2 for token in specials):
        raise ValueError(
            f"build_char_tokenizer: special tokens must be 4 distinct strings of >= 2 characters, got {specials}"
        )
    if padding_side not in ("left", "right"):
        raise ValueError(
            f"build_char_tokenizer: argument 'padding_side' must be 'left' or 'right', got {padding_side!r}"
        )

    vocabulary = {token: index for index, token in enumerate(specials + characters)}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token=unk_token))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r".|\n|\r"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(specials)
    if add_bos or add_eos:
        single = " ".join(
            ([bos_token] if add_bos else []) + ["$A"] + ([eos_token] if add_eos else [])
        )
        pair = " ".join(
            ([bos_token] if add_bos else []) + ["$A", "$B"] + ([eos_token] if add_eos else [])
        )
        used = [
            (token, vocabulary[token])
            for token, flag in ((bos_token, add_bos), (eos_token, add_eos))
            if flag
        ]
        backend.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=used
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad_token,
        bos_token=bos_token,
        eos_token=eos_token,
        unk_token=unk_token,
        padding_side=padding_side,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
