r"""Format verifiers: a regular expression, or required tags such as
``<think>...</think><answer>...</answer>`` (the DeepSeek-R1 format reward, arXiv:2501.12948)."""

import re
from dataclasses import dataclass

from rlobj.verifiers.base import Sample, require_completion

_TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class RegexFormat:
    r"""Reward 1 when the completion matches ``pattern`` (``re.fullmatch`` if ``full``, else
    ``re.search``), compiled with ``re.DOTALL``.

    $$ r = \mathbb{1}[\,y \in L(\mathrm{pattern})\,] $$

    Example:
        >>> RegexFormat(r"\d+")("123", {})
        1.0
        >>> RegexFormat(r"\d+")("12a", {})
        0.0
    """

    pattern: str
    full: bool = True

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValueError(
                f"RegexFormat: argument 'pattern' is not a valid regex ({error}): {self.pattern!r}"
            ) from error

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "RegexFormat")
        match = (re.fullmatch if self.full else re.search)(
            self.pattern, completion, flags=re.DOTALL
        )
        return 1.0 if match else 0.0


@dataclass(frozen=True)
class TagFormat:
    r"""Reward 1 when each tag in ``tags`` appears exactly once as ``<tag>...</tag>``, in order.

    With ``strict=True`` (default) nothing but whitespace may lie outside the tags, i.e. the
    completion fullmatches ``\s*<t1>.*?</t1>\s*<t2>.*?</t2>\s*`` (the R1 format reward); with
    ``strict=False`` free text may surround and separate them. Tag contents may not contain another
    opening or closing tag of the list.

    Args:
        tags: tag names in the required order. Default ``("think", "answer")``.
        strict: forbid text outside the tags. Default ``True``.

    Example:
        >>> TagFormat()("<think>2+2</think>\n<answer>4</answer>", {})
        1.0
        >>> TagFormat()("<answer>4</answer><think>x</think>", {})
        0.0
        >>> TagFormat(strict=False)("Sure! <think>a</think> ok <answer>4</answer>", {})
        1.0

    References:
        DeepSeek-AI, "DeepSeek-R1", arXiv:2501.12948, section 2.2.2 (format reward).
    """

    tags: tuple[str, ...] = ("think", "answer")
    strict: bool = True

    def __post_init__(self) -> None:
        if not self.tags:
            raise ValueError("TagFormat: argument 'tags' must name at least one tag, got ()")
        for tag in self.tags:
            if not isinstance(tag, str) or not _TAG_NAME.match(tag):
                raise ValueError(
                    f"TagFormat: argument 'tags' must hold tag names like 'think', got {tag!r}"
                )
        object.__setattr__(self, "tags", tuple(self.tags))

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "TagFormat")
        for tag in self.tags:
            if completion.count(f"<{tag}>") != 1 or completion.count(f"</{tag}>") != 1:
                return 0.0
        gap = r"\s*" if self.strict else r".*?"
        body = gap.join(rf"<{re.escape(tag)}>.*?</{re.escape(tag)}>" for tag in self.tags)
        return 1.0 if re.fullmatch(gap + body + gap, completion, flags=re.DOTALL) else 0.0
