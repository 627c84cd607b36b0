r"""What every task generator shares: deterministic sampling from a seed and a held-out split.

A task generator is a frozen dataclass with

- ``sample(rng: random.Random) -> dict``: one problem ``{"prompt": str, "answer": str, "task": str, ...}``;
- ``verifier() -> Verifier``: the reward function that checks completions for it;
- difficulty knobs as fields (digits, operand count, people, ...).

:func:`generate` draws ``count`` samples from ``random.Random(seed)``: the same seed gives the same
samples on every machine (Python's ``random`` is stable across platforms for a given version).
:func:`in_split` assigns each problem to ``"train"`` or ``"test"`` by a hash of its prompt, so a
training stream and an evaluation set drawn with ``split="train"`` / ``split="test"`` never share
a problem, whatever their seeds.

The trainer reads tasks by index: a :class:`TaskSource` maps an index to a record
``{"prompt", "answer", "completion"}`` deterministically, so the trainer's data position (an
integer saved in checkpoints) is all it takes to resume the same stream. Here are the default run's
:class:`AdditionTask` and :class:`LeveledAddition`, :class:`GeneratedTask` (records from any task
generator) and :class:`ExactAnswer`, the default run's verifier. Files and Hub datasets go through
:class:`rlobj.train.hf_data.DatasetTask`. The character tokenizer and its helpers live in
:mod:`rlobj.ops.tokenizer`.
"""

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rlobj.verifiers import Verifier
from rlobj.verifiers.extract import check_extract_mode

__all__ = [
    "SPLITS", "TaskGenerator", "in_split", "check_split_arguments", "check_task_arguments", "generate", "stream",
    "TaskSource", "AdditionTask", "GeneratedTask", "LeveledAddition", "ExactAnswer",
]

SPLITS = (None, "train", "test")


@runtime_checkable
class TaskGenerator(Protocol):
    """A verifiable task: draws samples and names its verifier."""

    def sample(self, rng: random.Random) -> dict[str, Any]: ...

    def verifier(self) -> Verifier: ...


def in_split(key: str, split: str | None, test_fraction: float) -> bool:
    """Whether the problem identified by ``key`` belongs to ``split``: ``"test"`` holds the keys
    whose SHA-1 hash, read as a number in [0, 1), is below ``test_fraction``; ``"train"`` the rest;
    ``None`` accepts everything.

    Example:
        >>> in_split("12+34=", "train", 0.1) != in_split("12+34=", "test", 0.1)
        True
        >>> in_split("12+34=", None, 0.1)
        True
    """
    if split not in SPLITS:
        raise ValueError(f"argument 'split' must be one of {SPLITS}, got {split!r}")
    if split is None:
        return True
    position = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64
    return (position < test_fraction) == (split == "test")


def check_split_arguments(owner: str, split: str | None, test_fraction: float) -> None:
    """Raise ``ValueError`` naming ``owner`` for a bad ``split`` / ``test_fraction``."""
    if split not in SPLITS:
        raise ValueError(f"{owner}: argument 'split' must be one of {SPLITS}, got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"{owner}: argument 'test_fraction' must be in (0, 1), got {test_fraction}"
        )


def check_task_arguments(owner: str, extract: str, split: str | None, test_fraction: float,
                         prompt_format: str | None = None, placeholders: tuple[str, ...] = ()) -> None:
    """The checks every task generator shares: ``extract`` one of the verifiers' extraction modes,
    ``prompt_format`` holding each ``{placeholder}``, then :func:`check_split_arguments`; a
    ``ValueError`` names ``owner`` and the argument."""
    if prompt_format is not None and any("{" + name + "}" not in prompt_format for name in placeholders):
        wanted = " and ".join(f"'{{{name}}}'" for name in placeholders)
        raise ValueError(f"{owner}: argument 'prompt_format' must contain {wanted}, got {prompt_format!r}")
    check_extract_mode(extract, owner)
    check_split_arguments(owner, split, test_fraction)


def generate(task: TaskGenerator, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` samples of ``task`` drawn from ``random.Random(seed)`` (deterministic).

    Example:
        >>> from rlobj.data import ArithmeticTask
        >>> generate(ArithmeticTask(), 2, seed=0) == generate(ArithmeticTask(), 2, seed=0)
        True
    """
    if not (isinstance(count, int) and count >= 0):
        raise ValueError(f"generate: argument 'count' must be an int >= 0, got {count!r}")
    rng = random.Random(seed)
    return [task.sample(rng) for _ in range(count)]


def stream(task: TaskGenerator, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Endless deterministic stream of samples of ``task`` from ``random.Random(seed)``."""
    rng = random.Random(seed)
    while True:
        yield task.sample(rng)


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
