r"""The verifier protocol shared by every reward function in :mod:`rlobj.verifiers`.

A verifier is a plain callable

$$ r = V(\text{completion}, \text{sample}) \in \mathbb{R}, $$

where ``completion`` is the model's decoded response and ``sample`` is the task record the prompt
came from (a mapping with at least ``"prompt"`` and usually ``"answer"``). Verifiers are frozen
dataclasses so that they pickle (they run in worker processes, see :mod:`rlobj.verifiers.pool`),
print readably, compare by value and can be built from YAML (``class_path`` / ``init_args``).
Nothing in this package imports torch.
"""

import math
import numbers
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

Sample = Mapping[str, Any]
"""A task record: a mapping with ``"prompt"``, usually ``"answer"``, and task-specific fields."""


@runtime_checkable
class Verifier(Protocol):
    """Anything callable as ``verifier(completion, sample) -> float``.

    Example:
        >>> from rlobj.verifiers import ExactMatch
        >>> isinstance(ExactMatch(), Verifier)
        True
        >>> ExactMatch()("42", {"prompt": "40+2=", "answer": "42"})
        1.0
    """

    def __call__(self, completion: str, sample: Sample) -> float: ...


def require_field(sample: Sample, key: str, verifier_name: str) -> Any:
    """Return ``sample[key]`` or raise a ``KeyError`` naming the verifier, the key and the keys present.

    Example:
        >>> require_field({"answer": "3"}, "answer", "ExactMatch")
        '3'
    """
    if not isinstance(sample, Mapping):
        raise TypeError(
            f"{verifier_name}: argument 'sample' must be a mapping (dict-like), got {type(sample).__name__}"
        )
    if key not in sample:
        raise KeyError(
            f"{verifier_name}: sample has no field {key!r} (expected it to hold the reference); "
            f"fields present: {sorted(map(str, sample))}"
        )
    return sample[key]


def require_completion(completion: Any, verifier_name: str) -> str:
    """Check that ``completion`` is a ``str`` (raise ``TypeError`` naming the verifier otherwise)."""
    if not isinstance(completion, str):
        raise TypeError(
            f"{verifier_name}: argument 'completion' must be str, got {type(completion).__name__}"
        )
    return completion


def validate_reward(
    value: Any, reward_range: tuple[float, float] = (0.0, 1.0)
) -> tuple[str, float, str]:
    """Classify a verifier's return value.

    Returns ``("ok", float(value), "")`` for a finite real number inside ``reward_range``
    (inclusive) and ``("invalid", 0.0, reason)`` for anything else (NaN, inf, a string, ``None``,
    out of range). Booleans count as 0/1.

    Example:
        >>> validate_reward(0.5)
        ('ok', 0.5, '')
        >>> validate_reward(float("nan"))[0]
        'invalid'
        >>> validate_reward("1.0")[0]
        'invalid'
        >>> validate_reward(2.0)[0]
        'invalid'
    """
    low, high = reward_range
    if not isinstance(value, numbers.Real):
        return "invalid", 0.0, f"reward is not a real number: {type(value).__name__} {value!r:.80}"
    try:
        as_float = float(value)
    except (TypeError, ValueError, OverflowError) as error:
        return "invalid", 0.0, f"reward cannot be converted to float: {error}"
    if not math.isfinite(as_float):
        return "invalid", 0.0, f"reward is not finite: {as_float}"
    if not low <= as_float <= high:
        return "invalid", 0.0, f"reward {as_float} outside the allowed range [{low}, {high}]"
    return "ok", as_float, ""
