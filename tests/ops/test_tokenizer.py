"""The character tokenizer (rlobj/ops/tokenizer.py, re-exported by rlobj.data with the addition
alphabet)."""


import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlobj.data import (
    ADDITION_ALPHABET,
    build_char_tokenizer,
)


def _addition_tokenizer(**kwargs):
    return build_char_tokenizer(ADDITION_ALPHABET, bos_token="<bos>", padding_side="left", **kwargs)


def test_char_tokenizer_ids_specials_and_padding():
    tokenizer = _addition_tokenizer()
    assert (
        tokenizer.pad_token_id == 0 and tokenizer.bos_token_id == 1 and tokenizer.eos_token_id == 2
    )
    assert tokenizer.unk_token_id == 3 and len(tokenizer) == 4 + len(ADDITION_ALPHABET)
    assert tokenizer("12+34=")["input_ids"] == [5, 6, 14, 7, 8, 15]
    assert tokenizer("9x")["input_ids"] == [13, 3]
    assert tokenizer("46<eos>")["input_ids"] == [8, 10, 2]
    batch = tokenizer(["1+1=", "12+34="], padding=True)
    assert batch["input_ids"][0] == [0, 0, 5, 14, 5, 15] and batch["attention_mask"][0] == [
        0,
        0,
        1,
        1,
        1,
        1,
    ]
    wrapped = _addition_tokenizer(add_bos=True, add_eos=True)
    assert wrapped("1")["input_ids"] == [1, 5, 2]


@given(st.text(alphabet=ADDITION_ALPHABET + " \n", max_size=30))
def test_char_tokenizer_round_trip(text):
    tokenizer = _ROUND_TRIP_TOKENIZER
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


_ROUND_TRIP_TOKENIZER = build_char_tokenizer(ADDITION_ALPHABET + " \n")


def test_char_tokenizer_save_and_reload(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = _addition_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("12+34=")["input_ids"] == tokenizer("12+34=")["input_ids"]
    assert (
        reloaded.padding_side == "left"
        and reloaded.pad_token_id == 0
        and reloaded.eos_token_id == 2
    )
    assert reloaded.decode([5, 6, 2], skip_special_tokens=True) == "12"


def test_char_tokenizer_errors():
    assert build_char_tokenizer("112").get_vocab() == build_char_tokenizer("12").get_vocab()  # a set
    with pytest.raises(ValueError, match="add_bos=True needs a bos_token"):
        build_char_tokenizer(add_bos=True)
    with pytest.raises(ValueError, match="single characters, got 'ab'"):
        build_char_tokenizer(["ab"])
    with pytest.raises(ValueError, match="at least one character"):
        build_char_tokenizer("")
    with pytest.raises(ValueError, match="'padding_side' must be 'left' or 'right'"):
        build_char_tokenizer(padding_side="middle")
