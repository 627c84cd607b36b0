r"""Countdown: reach a target number from given numbers with ``+ - * /`` (TinyZero's task)."""

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rlobj.data.tasks import check_task_arguments, in_split
from rlobj.verifiers.puzzles import CountdownVerifier

DEFAULT_PROMPT = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use + - * / and "
    "each number at most once. Show your final equation in <answer> </answer> tags."
)
MAX_ATTEMPTS = 10_000


@dataclass(frozen=True)
class CountdownTask:
    r"""Countdown problems that are solvable by construction.

    Draws ``n_numbers`` integers in ``[min_number, max_number]``, builds a random expression tree
    over a random subset of at least two of them (all of them with ``use_all``), keeps it when
    every division is exact and the value is an integer in ``[min_target, max_target]``, and
    records that expression as the reference ``answer`` (one valid solution; others are
    accepted by the verifier). Harder: more numbers, larger ranges, ``use_all``.

    Args:
        n_numbers: how many numbers are given (>= 2). Default 4.
        min_number, max_number: range of the numbers. Default 1..50.
        min_target, max_target: range of the target. Default 10..200.
        use_all: the solution must use every number exactly once. Default ``False``.
        prompt_format: format string with ``{numbers}`` and ``{target}``.
        split, test_fraction: held-out split by prompt hash (see :func:`rlobj.data.tasks.in_split`).
        extract: extraction mode of the verifier. Default ``"answer_tag"``.

    Example:
        >>> import random
        >>> sample = CountdownTask().sample(random.Random(1))
        >>> CountdownTask().verifier()(f"<answer>{sample['answer']}</answer>", sample)
        1.0

    References:
        Pan et al., TinyZero (Countdown task and reward), https://github.com/Jiayi-Pan/TinyZero.
    """

    n_numbers: int = 4
    min_number: int = 1
    max_number: int = 50
    min_target: int = 10
    max_target: int = 200
    use_all: bool = False
    prompt_format: str = DEFAULT_PROMPT
    split: str | None = None
    test_fraction: float = 0.1
    extract: str = "answer_tag"

    def __post_init__(self) -> None:
        if not (isinstance(self.n_numbers, int) and 2 <= self.n_numbers <= 8):
            raise ValueError(
                f"CountdownTask: argument 'n_numbers' must be an int in [2, 8], got {self.n_numbers!r}"
            )
        if not 0 <= self.min_number <= self.max_number:
            raise ValueError(
                f"CountdownTask: need 0 <= min_number <= max_number, got {self.min_number}, {self.max_number}"
            )
        if not self.min_target <= self.max_target:
            raise ValueError(
                f"CountdownTask: need min_target <= max_target, got {self.min_target}, {self.max_target}"
            )
        check_task_arguments("CountdownTask", self.extract, self.split, self.test_fraction,
                             self.prompt_format, ("numbers", "target"))

    def _random_expression(
        self, rng: random.Random, numbers: list[int]
    ) -> tuple[Fraction, str] | None:
        items = [(Fraction(number), str(number)) for number in numbers]
        while len(items) > 1:
            left = items.pop(rng.randrange(len(items)))
            right = items.pop(rng.randrange(len(items)))
            operator = rng.choice("+-*/")
            if operator == "/" and (right[0] == 0 or (left[0] / right[0]).denominator != 1):
                return None
            value = {"+": left[0] + right[0], "-": left[0] - right[0], "*": left[0] * right[0]}.get(
                operator
            )
            value = left[0] / right[0] if operator == "/" else value
            text = (
                f"{left[1]} {operator} {right[1]}"
                if not items
                else f"({left[1]} {operator} {right[1]})"
            )
            items.append((value, text))
        return items[0]

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """Draw one solvable problem."""
        for _ in range(MAX_ATTEMPTS):
            numbers = [rng.randint(self.min_number, self.max_number) for _ in range(self.n_numbers)]
            size = self.n_numbers if self.use_all else rng.randint(2, self.n_numbers)
            built = self._random_expression(rng, rng.sample(numbers, size))
            if built is None:
                continue
            value, expression = built
            if value.denominator != 1 or not self.min_target <= value <= self.max_target:
                continue
            target = int(value)
            prompt = self.prompt_format.format(numbers=numbers, target=target)
            if not in_split(prompt, self.split, self.test_fraction):
                continue
            return {
                "prompt": prompt,
                "answer": expression,
                "task": "countdown",
                "numbers": numbers,
                "target": target,
            }
        raise RuntimeError(
            f"CountdownTask: no valid problem found in {MAX_ATTEMPTS} attempts; widen the target range"
        )

    def verifier(self) -> CountdownVerifier:
        """Checks validity of the equation, number usage and the target."""
        return CountdownVerifier(extract=self.extract, use_all=self.use_all)
