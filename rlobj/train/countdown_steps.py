r"""A small countdown with a written derivation, for the character tokenizer (search demonstrations).

Record ``i``: three numbers in ``[1, high]`` and a target reached by two operations, written
``"3 5 7 22="`` (the last number is the target) and solved step by step, one equation per step,
steps separated by a space: ``"3*5=15 15+7=22"``. Only the characters of the default tokenizer
(:data:`~rlobj.ops.tokenizer.ARITHMETIC_CHARS`) are used, and the space is one token, so a tree
search can take one equation as one step (``delimiter: " "``).

:class:`DerivationVerifier` checks the whole derivation: every step is ``a op b=c`` with
``op`` in ``+ - *``, ``c`` its true value, ``a`` and ``b`` taken from the pool (the given numbers,
then the results so far; each use consumes one), and the last result is the target.
"""

import random
import re
from dataclasses import dataclass
from typing import Any

from rlobj.data.tasks import TaskSource

__all__ = ["CountdownSteps", "DerivationVerifier"]

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_STEP = re.compile(r"^(\d+)([-+*])(\d+)=(\d+)$")


class CountdownSteps(TaskSource):
    r"""Three numbers, a target two operations away, the written derivation as the demonstration.

    Example:
        >>> task = CountdownSteps(seed=0)
        >>> record = task.record(0)
        >>> DerivationVerifier()(record["completion"], record)
        1.0

    Args:
        seed: stream seed.
        high: numbers are drawn from ``1..high``. Default 9.
    """

    def __init__(self, seed: int = 0, high: int = 9):
        if not isinstance(high, int) or isinstance(high, bool) or high < 2:
            raise ValueError(f"CountdownSteps.high: expected an int >= 2, got {high!r}")
        self.seed, self.high = int(seed), high

    def record(self, index: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + int(index))
        while True:
            numbers = [rng.randint(1, self.high) for _ in range(3)]
            a, b, c = rng.sample(numbers, 3)
            op1, op2 = rng.choice("+-*"), rng.choice("+-*")
            if op1 == "-" and a < b:
                a, b = b, a
            first = _OPS[op1](a, b)
            if op2 == "-" and first < c:
                continue
            target = _OPS[op2](first, c)
            if target == 0:
                continue
            derivation = f"{a}{op1}{b}={first} {first}{op2}{c}={target}"
            return {"prompt": f"{' '.join(map(str, numbers))} {target}=", "answer": str(target),
                    "completion": derivation, "numbers": numbers, "target": target}

    def __repr__(self) -> str:
        return f"CountdownSteps(seed={self.seed}, high={self.high})"


@dataclass(frozen=True)
class DerivationVerifier:
    r"""Reward 1 for a correct derivation of the record's ``target`` from its ``numbers``, else 0.

    Example:
        >>> record = {"numbers": [3, 5, 7], "target": 22}
        >>> v = DerivationVerifier()
        >>> v("3*5=15 15+7=22", record), v("5*3=15 7+15=22", record), v("3*5=15 15+7=23", record)
        (1.0, 1.0, 0.0)
        >>> v("3*7=21 21+1=22", record), v("7*3=21 21-5=16 16+3=19", record)  # 1 not given; 3 used twice
        (0.0, 0.0)
    """

    def __call__(self, completion: str, record) -> float:
        for key in ("numbers", "target"):
            if key not in record:
                raise KeyError(f"DerivationVerifier: record has no field {key!r}")
        pool = [int(n) for n in record["numbers"]]
        steps = completion.split()
        if not steps:
            return 0.0
        result = None
        for step in steps:
            match = _STEP.match(step)
            if match is None:
                return 0.0
            a, op, b, c = int(match[1]), match[2], int(match[3]), int(match[4])
            if _OPS[op](a, b) != c:
                return 0.0
            for operand in (a, b):
                if operand not in pool:
                    return 0.0
                pool.remove(operand)
            pool.append(c)
            result = c
        return float(result == int(record["target"]))
