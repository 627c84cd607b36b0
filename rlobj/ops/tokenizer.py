r"""The library's one character-level tokenizer (built locally with ``tokenizers``; nothing downloaded).

It sits in the bottom layer because both the tiny model of :mod:`rlobj.rollout.tiny` (the default
run) and the task data of :mod:`rlobj.data` use it, and neither layer may import the other.
``rlobj.rollout.tiny``, ``rlobj.data.tasks`` and ``rlobj.data`` re-export it.
"""

from collections.abc import Iterable

from rlobj.ops.errors import RlobjInputError

__all__ = ["ARITHMETIC_CHARS", "build_char_tokenizer", "check_characters", "load_tokenizer", "unknown_characters"]

#: Characters of the default run's tokenizer (digits, operators, '=', space).
ARITHMETIC_CHARS = "0123456789+-*= "


def build_char_tokenizer(
    chars: str | Iterable[str] = ARITHMETIC_CHARS,
    *,
    bos_token: str | None = None,
    add_bos: bool = False,
    add_eos: bool = False,
    padding_side: str = "right",
    pad_token: str = "<pad>",
    eos_token: str = "<eos>",
    unk_token: str = "<unk>",
    model_max_length: int | None = None,
):
    r"""A ``transformers.PreTrainedTokenizerFast`` with one token per character.

    Vocabulary: ``[pad, (bos,) eos, unk, *chars]`` in that order (so ``<pad>`` is 0, ``<eos>`` 1
    and ``<unk>`` 2 without a ``bos_token``); a character repeated in ``chars`` keeps its first
    id. Each input character is one token (``WordLevel`` behind a pre-tokenizer that isolates every
    character, newlines included), characters outside ``chars`` become ``unk``, special token
    strings are recognised in text, and decoding concatenates characters (``Fuse`` decoder).
    ``add_bos`` / ``add_eos`` wrap every encoded sequence (``TemplateProcessing``). The characters
    are recorded (``tokenizer.rlobj_chars``, also saved in ``tokenizer_config.json``): the trainer's
    DataModule refuses data with other characters and :func:`load_tokenizer` reloads
    the tokenizer as saved. Save with ``save_pretrained``.

    Args:
        chars: the characters (a string or an iterable of single characters). Default
            :data:`ARITHMETIC_CHARS`.
        bos_token: a beginning-of-sequence token placed after ``<pad>``; None (default) for none.
        add_bos, add_eos: wrap every encoded sequence in ``bos`` / ``eos``. Default False.
        padding_side: ``"right"`` (default) or ``"left"`` (what ``generate`` needs).
        pad_token, eos_token, unk_token: the special token strings (distinct, >= 2 characters).
        model_max_length: recorded on the tokenizer when given.

    Example:
        >>> tok = build_char_tokenizer("0123456789+=")
        >>> ids = tok.encode("12+3=", add_special_tokens=False)
        >>> ids, tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True)
        ([4, 5, 13, 6, 14], '12+3=')
        >>> build_char_tokenizer("0123456789+=", bos_token="<bos>", add_bos=True)("1")["input_ids"]
        [1, 5]
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    characters = list(chars)
    if not characters:
        raise ValueError(f"build_char_tokenizer: argument 'chars' must hold at least one character, got {chars!r}")
    for character in characters:
        if not isinstance(character, str) or len(character) != 1:
            raise ValueError(f"build_char_tokenizer: argument 'chars' must hold single characters, got {character!r}")
    specials = [pad_token] + ([bos_token] if bos_token is not None else []) + [eos_token, unk_token]
    if len(set(specials)) != len(specials) or any(not isinstance(t, str) or len(t) < 2 for t in specials):
        raise ValueError(f"build_char_tokenizer: special tokens must be distinct strings of >= 2 characters, "
                         f"got {specials}")
    if add_bos and bos_token is None:
        raise ValueError("build_char_tokenizer: add_bos=True needs a bos_token")
    if padding_side not in ("left", "right"):
        raise ValueError(f"build_char_tokenizer: argument 'padding_side' must be 'left' or 'right', got {padding_side!r}")

    vocabulary = {token: index for index, token in enumerate(specials)}
    for character in characters:
        vocabulary.setdefault(character, len(vocabulary))
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token=unk_token))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r".|\n|\r"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(specials)
    if add_bos or add_eos:
        wrap = [bos_token] if add_bos else [], [eos_token] if add_eos else []
        backend.post_processor = processors.TemplateProcessing(
            single=" ".join(wrap[0] + ["$A"] + wrap[1]), pair=" ".join(wrap[0] + ["$A", "$B"] + wrap[1]),
            special_tokens=[(token, vocabulary[token]) for token in wrap[0] + wrap[1]])
    text = "".join(dict.fromkeys(characters))
    extra = {} if model_max_length is None else {"model_max_length": model_max_length}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=pad_token, eos_token=eos_token, unk_token=unk_token,
        padding_side=padding_side, clean_up_tokenization_spaces=False,
        **({"bos_token": bos_token} if bos_token is not None else {}), **extra)
    tokenizer.rlobj_chars = text  # the DataModule refuses data with other characters
    tokenizer.init_kwargs["rlobj_chars"] = text  # saved in tokenizer_config.json: load_tokenizer knows it
    return tokenizer


def load_tokenizer(path):
    r"""The tokenizer saved in ``path``: a character tokenizer of :func:`build_char_tokenizer` as it was
    saved, any other through ``AutoTokenizer.from_pretrained``.

    ``AutoTokenizer`` (transformers 5) picks the tokenizer class from the model's ``model_type``:
    next to a Qwen2 ``config.json`` it builds a ``Qwen2Tokenizer``, whose own pre-tokenizer
    replaces the character split and drops spaces (``"1 2"`` would encode as ``"12"``). A
    directory whose ``tokenizer_config.json`` records ``rlobj_chars`` is therefore loaded with
    ``PreTrainedTokenizerFast.from_pretrained``, which keeps the saved ``tokenizer.json`` as is.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> build_char_tokenizer("0123 +").save_pretrained(folder)  # doctest: +ELLIPSIS
        (...)
        >>> load_tokenizer(folder).encode("1 2+3", add_special_tokens=False)
        [4, 7, 5, 8, 6]
    """
    import json
    from pathlib import Path

    config = Path(path) / "tokenizer_config.json"
    chars = json.loads(config.read_text()).get("rlobj_chars") if config.is_file() else None
    if isinstance(chars, str):
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
        tokenizer.rlobj_chars = chars
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def unknown_characters(tokenizer, text: str) -> list[str]:
    """The distinct characters of ``text`` that a character tokenizer maps to ``<unk>``, in order.

    Example:
        >>> unknown_characters(build_char_tokenizer("0123456789="), "rev 12=")
        ['r', 'e', 'v', ' ']
    """
    vocab = tokenizer.get_vocab()
    return list(dict.fromkeys(c for c in text if c not in vocab))


def check_characters(tokenizer, records: list[dict], fields: tuple[str, ...] = ("prompt", "completion")) -> None:
    """Raise naming the characters of ``records`` outside a character tokenizer (they would all
    become ``<unk>``); tokenizers not built by :func:`build_char_tokenizer` are not checked.
    Special tokens written as text (``<eos>``: one token each) are allowed."""
    chars = getattr(tokenizer, "rlobj_chars", None)
    if chars is None:
        return
    allowed = set(chars)
    specials = [t for t in getattr(tokenizer, "all_special_tokens", ()) if t]
    for record in records:
        for field in fields:
            text = record.get(field)
            if isinstance(text, str):
                for token in specials:
                    text = text.replace(token, "")
            if isinstance(text, str) and not set(text) <= allowed:
                missing = "".join(unknown_characters(tokenizer, text))
                raise RlobjInputError(
                    f"tokenizer_chars: {missing!r} in the {field} {text[:60]!r} are not characters of the "
                    f"character tokenizer ({chars!r}); add them to model.policy.tokenizer_chars (they would "
                    "otherwise all become <unk>)")
