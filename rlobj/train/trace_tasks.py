r"""A reasoning-trace task for the reproductions: countdown with a written derivation.

:class:`CountdownTrace` gives ``n`` small numbers and a target; the answer is a derivation that
combines two numbers of the pool per step with ``+`` or ``-`` and, after every step but the
last, copies the new pool::

    prompt      "7 3 5 2 8>15:"
    completion  "7-3=4 4 5 2 8;4+5=9 9 2 8;9-2=7 7 8;7+8=15"

Every step mixes **genuine choices** (which two numbers, which operation: the tokens right after
``;`` and the operator) with **deterministic tokens** (the result of the arithmetic, the copied
pool). Most problems have several valid derivations (orders, and often several sign patterns),
so pass@k at large k and the diversity of answers mean something. The trace of five numbers is
about 40 characters (one token each with the character tokenizer).

:class:`TraceVerifier` checks the whole trace, not only the final number: every step must use
two numbers of the current pool, compute correctly, stay non-negative and copy the new pool
exactly (the result first, then the unused numbers in order); the last step must leave one
number equal to the target. The reward is 1 for a valid trace reaching the target, else 0.
"""

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rlobj.data.tasks import TaskSource

__all__ = ["CountdownTrace", "TraceVerifier", "TRACE_CHARS", "check_trace"]

#: Characters of the task (the character tokenizer's ``tokenizer_chars`` for it).
TRACE_CHARS = "0123456789+-= ;>:"
_STEP = re.compile(r"^(\d{1,3})([+-])(\d{1,3})=(\d{1,3})((?: \d{1,3})*)$")


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


class CountdownTrace(TaskSource):
    r"""Countdown over ``+``/``-`` with a written derivation: reach ``target`` using every number once.

    Record ``i`` draws ``numbers`` numbers uniform in ``[low, high]`` from
    ``random.Random(seed * 1_000_003 + i)`` and a random derivation (a random pair of the pool,
    ``+`` with probability ``plus``, else ``-`` with the larger number first, until one number is
    left); its end value is the ``target`` and the derivation the demonstration (``"completion"``;
    one valid answer of possibly many). The record's ``"numbers"`` and ``"target"`` are what
    :class:`TraceVerifier` reads.

    ``plus`` skews both the targets and the demonstrations: two streams with different ``plus``
    model a warm-up corpus with a habit (say ``plus=0.92``: mostly sums) and a task whose problems
    need the other sign more often (``plus=0.7``); a policy that imitates the corpus then solves
    some of the task's problems only rarely (the reproductions' third testbed variant).

    Args:
        seed: stream seed.
        numbers: how many numbers per problem (>= 2). Default 5.
        low, high: inclusive range of the numbers (>= 0). Default 1..9.
        plus: probability that a step of the derivation adds (0 < plus < 1). Default 0.5, drawn
            as in the first versions (``rng.choice("+-")``), so the default streams are unchanged.

    Example:
        >>> record = CountdownTrace(seed=0).record(0)
        >>> TraceVerifier()(record["completion"], record)
        1.0
    """

    def __init__(self, seed: int = 0, numbers: int = 5, low: int = 1, high: int = 9, plus: float = 0.5):
        if isinstance(numbers, bool) or not isinstance(numbers, int) or numbers < 2:
            raise ValueError(f"CountdownTrace.numbers: expected an int >= 2, got {numbers!r}")
        if not (isinstance(low, int) and isinstance(high, int)) or low < 0 or high < low or high > 99:
            raise ValueError(f"CountdownTrace: need integers 0 <= low <= high <= 99, got low={low!r}, high={high!r}")
        if isinstance(plus, bool) or not isinstance(plus, (int, float)) or not 0.0 < plus < 1.0:
            raise ValueError(f"CountdownTrace.plus: expected a probability strictly between 0 and 1, got {plus!r}")
        self.seed, self.numbers, self.low, self.high, self.plus = int(seed), numbers, low, high, float(plus)

    def record(self, index: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + int(index))
        start = [rng.randint(self.low, self.high) for _ in range(self.numbers)]
        pool, steps = list(start), []
        while len(pool) > 1:
            i, j = rng.sample(range(len(pool)), 2)
            a, b = pool[i], pool[j]
            op = rng.choice("+-") if self.plus == 0.5 else ("+" if rng.random() < self.plus else "-")
            if op == "-" and a < b:
                a, b = b, a
            c = _apply(a, op, b)
            rest = list(pool)  # the unused numbers in order (first occurrences removed, as the verifier does)
            rest.remove(a)
            rest.remove(b)
            pool = [c] + rest
            steps.append(f"{a}{op}{b}={c}" + ("".join(f" {x}" for x in pool) if len(pool) > 1 else ""))
        target = pool[0]
        completion = ";".join(steps)
        return {"prompt": " ".join(map(str, start)) + f">{target}:", "answer": str(target),
                "completion": completion, "numbers": start, "target": target}

    def __repr__(self) -> str:
        plus = "" if self.plus == 0.5 else f", plus={self.plus}"
        return f"CountdownTrace(seed={self.seed}, numbers={self.numbers}, low={self.low}, high={self.high}{plus})"


def check_trace(completion: str, numbers: list[int], target: int) -> tuple[bool, str]:
    """``(correct, reason)``: whether ``completion`` is a valid derivation of ``target`` from ``numbers``.

    ``reason`` names the first fault (``"ok"`` when correct): a malformed step, a number not in
    the pool, wrong arithmetic, a negative result, a wrongly copied pool, a step after the pool is
    down to one number, a trace that stops early, or a final number other than the target.
    """
    pool = list(numbers)
    steps = completion.strip().split(";") if completion.strip() else []
    if not steps:
        return False, "empty"
    for index, step in enumerate(steps):
        if len(pool) < 2:
            return False, f"step {index + 1}: the pool is already one number"
        match = _STEP.match(step)
        if match is None:
            return False, f"step {index + 1}: malformed {step!r}"
        a, op, b, c = int(match[1]), match[2], int(match[3]), int(match[4])
        written = [int(x) for x in match[5].split()]
        left = Counter(pool)
        left.subtract([a])
        if left[a] < 0:
            return False, f"step {index + 1}: {a} is not in the pool {pool}"
        left.subtract([b])
        if left[b] < 0:
            return False, f"step {index + 1}: {b} is not in the pool {pool}"
        if _apply(a, op, b) != c or c < 0:
            return False, f"step {index + 1}: {a}{op}{b} is not {c}"
        rest = list(pool)
        rest.remove(a)
        rest.remove(b)
        pool = [c] + rest
        expected = pool if len(pool) > 1 else []
        if written != expected:
            return False, f"step {index + 1}: copied pool {written} instead of {expected}"
    if len(pool) != 1:
        return False, f"the trace stops with the pool {pool}"
    if pool[0] != target:
        return False, f"reaches {pool[0]}, not the target {target}"
    return True, "ok"


@dataclass(frozen=True)
class TraceVerifier:
    r"""Reward of :class:`CountdownTrace`: 1 when the whole derivation is valid and reaches the target.

    Reads the record's ``"numbers"`` and ``"target"`` (:func:`check_trace`). Picklable.

    Example:
        >>> TraceVerifier()("3+4=7", {"numbers": [3, 4], "target": 7})
        1.0
        >>> TraceVerifier()("3+4=8", {"numbers": [3, 4], "target": 8})
        0.0
    """

    def __call__(self, completion: str, sample) -> float:
        for key in ("numbers", "target"):
            if key not in sample:
                raise KeyError(f"TraceVerifier: sample has no field {key!r} (a CountdownTrace record has both)")
        return float(check_trace(completion, list(sample["numbers"]), int(sample["target"]))[0])
