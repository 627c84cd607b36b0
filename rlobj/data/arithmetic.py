r"""Arithmetic problems with an exact integer answer (the default run's task)."""

import random
from dataclasses import dataclass
from typing import Any

from rlobj.data.tasks import check_task_arguments, in_split
from rlobj.verifiers import ExactMatch
from rlobj.verifiers.puzzles import evaluate_expression

OPERATORS = ("+", "-", "*")
MAX_REJECTIONS = 10_000


@dataclass(frozen=True)
class ArithmeticTask:
    r"""Expressions of ``n_operands`` integers in ``[min_value, max_value]`` joined by operators
    drawn from ``operators`` (usual precedence), answered by the exact integer value.

    Prompt: ``prompt_format.format(expression=...)``, by default ``"12+34="``; answer: the value in
    plain digits (``"46"``, ``"-5"``). Difficulty grows with the number of digits
    (:meth:`with_digits`), the number of operands and the operators allowed.

    Args:
        n_operands: how many numbers (>= 2). Default 2.
        min_value, max_value: operand range, inclusive. Default 0..99 (the default run).
        operators: allowed operators, a subset of ``("+", "-", "*")``. Default ``("+",)``.
        prompt_format: format string with ``{expression}``. Default ``"{expression}="``.
        spaces: write ``12 + 34`` instead of ``12+34``. Default ``False``.
        split, test_fraction: ``"train"`` / ``"test"`` keep only problems hashed into that part
            (see :func:`rlobj.data.tasks.in_split`); ``None`` keeps all. Default ``None``, 0.1.
        extract: extraction mode of the verifier. Default ``"whole"``.

    Example:
        >>> import random
        >>> ArithmeticTask().sample(random.Random(0))
        {'prompt': '49+97=', 'answer': '146', 'task': 'arithmetic', 'expression': '49+97'}
        >>> ArithmeticTask().verifier()("146", {"answer": "146"})
        1.0
    """

    n_operands: int = 2
    min_value: int = 0
    max_value: int = 99
    operators: tuple[str, ...] = ("+",)
    prompt_format: str = "{expression}="
    spaces: bool = False
    split: str | None = None
    test_fraction: float = 0.1
    extract: str = "whole"

    def __post_init__(self) -> None:
        object.__setattr__(self, "operators", tuple(self.operators))
        if not (isinstance(self.n_operands, int) and self.n_operands >= 2):
            raise ValueError(
                f"ArithmeticTask: argument 'n_operands' must be an int >= 2, got {self.n_operands!r}"
            )
        if not (
            isinstance(self.min_value, int)
            and isinstance(self.max_value, int)
            and 0 <= self.min_value <= self.max_value
        ):
            raise ValueError(
                f"ArithmeticTask: arguments 'min_value' and 'max_value' must be ints with 0 <= min_value <= max_value, "
                f"got {self.min_value!r}, {self.max_value!r}"
            )
        if not self.operators or any(operator not in OPERATORS for operator in self.operators):
            raise ValueError(
                f"ArithmeticTask: argument 'operators' must be a non-empty subset of {OPERATORS}, got {self.operators!r}"
            )
        check_task_arguments("ArithmeticTask", self.extract, self.split, self.test_fraction,
                             self.prompt_format, ("expression",))

    @classmethod
    def with_digits(cls, digits: int, **options: Any) -> "ArithmeticTask":
        """Operands with exactly ``digits`` digits (``digits=1`` allows 0..9).

        Example:
            >>> ArithmeticTask.with_digits(3).min_value, ArithmeticTask.with_digits(3).max_value
            (100, 999)
        """
        if not (isinstance(digits, int) and digits >= 1):
            raise ValueError(
                f"ArithmeticTask.with_digits: argument 'digits' must be an int >= 1, got {digits!r}"
            )
        return cls(
            min_value=0 if digits == 1 else 10 ** (digits - 1), max_value=10**digits - 1, **options
        )

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """Draw one problem (rejecting problems of the other split)."""
        joiner = " {} " if self.spaces else "{}"
        for _ in range(MAX_REJECTIONS):
            operands = [rng.randint(self.min_value, self.max_value) for _ in range(self.n_operands)]
            symbols = [rng.choice(self.operators) for _ in range(self.n_operands - 1)]
            expression = str(operands[0]) + "".join(
                joiner.format(symbol) + str(number)
                for symbol, number in zip(symbols, operands[1:], strict=True)
            )
            prompt = self.prompt_format.format(expression=expression)
            if in_split(prompt, self.split, self.test_fraction):
                value = evaluate_expression(expression)[0]
                return {
                    "prompt": prompt,
                    "answer": str(int(value)),
                    "task": "arithmetic",
                    "expression": expression,
                }
        raise RuntimeError(
            f"ArithmeticTask: no problem of split {self.split!r} found in {MAX_REJECTIONS} draws"
        )

    def verifier(self) -> ExactMatch:
        """Exact match of the integer answer (whole completion by default)."""
        return ExactMatch(extract=self.extract)
