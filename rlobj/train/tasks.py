r"""Task sources for the trainer: records ``{"prompt", "answer", "completion"}`` by index.

A :class:`TaskSource` maps an index to a task record deterministically, so the trainer's data
position (an integer saved in checkpoints) is all it takes to resume the same stream. Two sources
live here because the default run needs them and must not download anything:

* :class:`AdditionTask`: generated two-number addition (``"12+34="`` -> ``"46"``);
* :class:`GeneratedTask`: records from a task generator of :mod:`rlobj.data`.

Your own data (files or Hub datasets) goes through :class:`rlobj.train.hf_data.DatasetTask`.

Also here: :func:`build_char_tokenizer` (a character-level ``PreTrainedTokenizerFast`` built
locally) and :class:`ExactAnswer`, the default run's verifier. They are the trainer's private
fallbacks; the richer generators, loaders and verifiers of :mod:`rlobj.data` and
:mod:`rlobj.verifiers` plug in through the same interfaces (``class_path`` in YAML).
"""

import random
from dataclasses import dataclass
from typing import Any

from rlobj.rollout.tiny import (  # defined with the tiny model, re-exported
    ARITHMETIC_CHARS,
    build_char_tokenizer,
)

__all__ = [
    "TaskSource",
    "AdditionTask",
    "GeneratedTask",
    "LeveledAddition",
    "ExactAnswer",
    "build_char_tokenizer",
    "load_tokenizer",
    "unknown_characters",
    "check_characters",
    "ARITHMETIC_CHARS",
]

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
                from rlobj.ops.errors import RlobjInputError

                missing = "".join(unknown_characters(tokenizer, text))
                raise RlobjInputError(
                    f"tokenizer_chars: {missing!r} in the {field} {text[:60]!r} are not characters of the "
                    f"character tokenizer ({chars!r}); add them to model.policy.tokenizer_chars (they would "
                    "otherwise all become <unk>)")


class TaskSource:
    """Base of task sources: ``record(index)`` returns the same record for the same index."""

    def record(self, index: int) -> dict[str, Any]:  # pragma: no cover - subclasses override
        raise TypeError(f"{type(self).__name__} does not define record()")

    def records(self, start: int, count: int) -> list[dict[str, Any]]:
        """Records ``start, start + 1, ..., start + count - 1``."""
        return [self.record(index) for index in range(start, start + count)]


class AdditionTask(TaskSource):
    r"""Two-number addition ``"a+b="`` -> ``"a+b"`` with $a, b$ uniform in ``[low, high]``.

    Record ``i`` is drawn from ``random.Random(seed * 1_000_003 + i)``: any index, any order,
    always the same problem. Different seeds give independent streams (a training stream and a
    fixed evaluation set that is "held-out style": same distribution, other draws).

    Args:
        seed: stream seed. Default 0.
        low, high: inclusive operand range. Default 0..99.
    """

    def __init__(self, seed: int = 0, low: int = 0, high: int = 99):
        if not (isinstance(low, int) and isinstance(high, int)) or low < 0 or high < low:
            raise ValueError(f"AdditionTask: need integers 0 <= low <= high, got low={low!r}, high={high!r}")
        self.seed, self.low, self.high = int(seed), low, high

    def record(self, index: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + int(index))
        a, b = rng.randint(self.low, self.high), rng.randint(self.low, self.high)
        answer = str(a + b)
        return {"prompt": f"{a}+{b}=", "answer": answer, "completion": answer}

    def __repr__(self) -> str:
        return f"AdditionTask(seed={self.seed}, low={self.low}, high={self.high})"


class GeneratedTask(TaskSource):
    r"""Index-addressable records from a task generator of :mod:`rlobj.data` (``sample(rng)``).

    Record ``i`` is ``task.sample(random.Random(seed * 1_000_003 + i))`` with ``"completion"``
    set to the answer (the demonstration for ``sft``), so any generator (``ArithmeticTask``,
    ``CountdownTask``, ``KnightsKnavesTask``, with their ``split="train"`` / ``"test"`` held-out
    hashing) becomes a resumable stream.

    Args:
        task: an object with ``sample(rng: random.Random) -> dict`` (``"prompt"``, ``"answer"``).
        seed: stream seed. Default 0.
    """

    def __init__(self, task: Any, seed: int = 0):
        if not callable(getattr(task, "sample", None)):
            raise TypeError(f"GeneratedTask.task: expected a task generator with sample(rng), got {task!r}")
        self.task, self.seed = task, int(seed)

    def record(self, index: int) -> dict[str, Any]:
        row = dict(self.task.sample(random.Random(self.seed * 1_000_003 + int(index))))
        for key in ("prompt", "answer"):
            if key not in row:
                raise KeyError(f"GeneratedTask: {type(self.task).__name__}.sample() returned no {key!r} field")
        row.setdefault("completion", str(row["answer"]))
        return row

    def __repr__(self) -> str:
        return f"GeneratedTask(task={self.task!r}, seed={self.seed})"


@dataclass(frozen=True)
class ExactAnswer:
    r"""Reward $\mathbb{1}[\mathrm{strip}(y) = \mathrm{strip}(a)]$: the whole completion must be the answer.

    The default run's verifier (the model is asked for nothing but the number). Picklable, so it
    also runs in :class:`rlobj.verifiers.VerifierPool` workers.

    Example:
        >>> ExactAnswer()(" 46", {"answer": "46"}), ExactAnswer()("4", {"answer": "46"})
        (1.0, 0.0)
    """

    answer_key: str = "answer"

    def __call__(self, completion: str, sample) -> float:
        if self.answer_key not in sample:
            raise KeyError(f"ExactAnswer: sample has no field {self.answer_key!r}")
        return float(completion.strip() == str(sample[self.answer_key]).strip())


class LeveledAddition(TaskSource):
    r"""Addition at ``len(ranges)`` difficulty levels: record ``i`` has level ``i % len(ranges)`` and
    operands uniform in ``ranges[level]``; the record's ``domain`` is ``"level<k>"``.

    A stream with a known difficulty range for the data loops (:mod:`rlobj.train.data_strategies`):
    the tiny model learns one-digit sums long before three-digit ones.

    Example:
        >>> task = LeveledAddition(seed=0)
        >>> [task.record(i)["domain"] for i in range(4)]
        ['level0', 'level1', 'level2', 'level0']

    Args:
        seed: stream seed.
        ranges: inclusive operand range of each level. Default ``[[0, 9], [10, 99], [100, 999]]``.
    """

    def __init__(self, seed: int = 0, ranges: list[list[int]] = ((0, 9), (10, 99), (100, 999))):  # noqa: B006
        ranges = [tuple(r) for r in ranges]
        if not ranges or any(len(r) != 2 or not 0 <= r[0] <= r[1] for r in ranges):
            raise ValueError(f"LeveledAddition.ranges: expected [[low, high], ...] with 0 <= low <= high, got {ranges!r}")
        self.seed, self.ranges = int(seed), ranges

    def record(self, index: int) -> dict[str, Any]:
        level = int(index) % len(self.ranges)
        low, high = self.ranges[level]
        rng = random.Random(self.seed * 1_000_003 + int(index))
        a, b = rng.randint(low, high), rng.randint(low, high)
        answer = str(a + b)
        return {"prompt": f"{a}+{b}=", "answer": answer, "completion": answer, "domain": f"level{level}"}

    def __repr__(self) -> str:
        return f"LeveledAddition(seed={self.seed}, ranges={[list(r) for r in self.ranges]})"
