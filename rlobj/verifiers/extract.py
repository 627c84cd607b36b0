r"""Pulling the answer span out of a completion (shared by the verifiers and the data loaders).

Extraction modes (argument ``extract`` of :class:`~rlobj.verifiers.ExactMatch` and friends):

| mode | takes |
|---|---|
| ``"whole"`` | the whole completion, stripped |
| ``"answer_tag"`` | the content of the last ``<answer>...</answer>`` |
| ``"boxed"`` | the content of the last ``\boxed{...}`` (braces matched) |
| ``"last_number"`` | the last number (``-1,234.5``, ``3/4``) |
| ``"last_line"`` | the last non-empty line |

Every function returns ``None`` when nothing matches, so a missing answer scores 0 instead of
raising.
"""

import re

EXTRACT_MODES = ("whole", "answer_tag", "boxed", "last_number", "last_line")

_NUMBER = re.compile(r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|\.\d+)%?")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#-]*)[^\n]*\n(.*?)```", re.DOTALL)



def check_extract_mode(mode: str, owner: str | None = None) -> None:
    """Raise ``ValueError`` (naming ``owner`` when given) unless ``mode`` is one of :data:`EXTRACT_MODES`."""
    if mode not in EXTRACT_MODES:
        prefix = f"{owner}: " if owner else ""
        raise ValueError(f"{prefix}argument 'extract' must be one of {EXTRACT_MODES}, got {mode!r}")

def last_boxed_content(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``), with nested braces matched.

    Example:
        >>> last_boxed_content(r"so \boxed{1} then \boxed{\frac{1}{2}}.")
        '\\frac{1}{2}'
        >>> last_boxed_content("no box") is None
        True
    """
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    position = text.index("{", start) + 1
    depth = 1
    for index in range(position, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[position:index]
    return None


def tag_content(text: str, tag: str) -> str | None:
    """Content of the last ``<tag>...</tag>`` pair, stripped.

    Example:
        >>> tag_content("<think>hm</think><answer> 7 </answer>", "answer")
        '7'
    """
    matches = re.findall(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, flags=re.DOTALL)
    return matches[-1].strip() if matches else None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (thousands separators, a ``p/q`` fraction, a trailing
    ``%`` allowed).

    Example:
        >>> last_number("it costs 1,250.5 dollars, not 3")
        '3'
        >>> last_number("ratio 3 / 4")
        '3 / 4'
    """
    matches = _NUMBER.findall(text)
    return matches[-1].strip() if matches else None


def extract_answer(text: str, mode: str = "whole") -> str | None:
    """Apply one of :data:`EXTRACT_MODES` to ``text``.

    Example:
        >>> extract_answer("  42\\n", "whole")
        '42'
        >>> extract_answer("a\\n\\nfinal: 5\\n", "last_line")
        'final: 5'
    """
    check_extract_mode(mode)
    if mode == "whole":
        return text.strip()
    if mode == "answer_tag":
        return tag_content(text, "answer")
    if mode == "boxed":
        found = last_boxed_content(text)
        return None if found is None else found.strip()
    if mode == "last_number":
        return last_number(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def extract_code(text: str) -> str:
    """Source code from a completion: the last fenced block (```` ```lang ... ``` ````), else all of it.

    Example:
        >>> extract_code("Here:\\n```python\\nprint(1)\\n```\\n")
        'print(1)\\n'
        >>> extract_code("print(2)")
        'print(2)'
    """
    blocks = _FENCE.findall(text)
    return blocks[-1][1] if blocks else text
