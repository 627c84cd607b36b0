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
"""

import hashlib
import random
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from rlobj.verifiers import Verifier

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
