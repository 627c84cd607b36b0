r"""The character tokenizer for task data: :func:`rlobj.ops.tokenizer.build_char_tokenizer` (the
library's one character tokenizer, re-exported here) and the alphabet of addition problems.

Example:
    >>> tokenizer = build_char_tokenizer(ADDITION_ALPHABET, bos_token="<bos>", padding_side="left")
    >>> tokenizer("12+34=")["input_ids"], len(tokenizer)
    ([5, 6, 14, 7, 8, 15], 16)
"""

from rlobj.ops.tokenizer import build_char_tokenizer

__all__ = ["ADDITION_ALPHABET", "build_char_tokenizer"]

ADDITION_ALPHABET = "0123456789+="
"""The characters of the default run's prompts and answers (``"12+34="``, ``"46"``)."""
