r"""Verifiers for generated puzzles: Countdown equations and Knights-and-Knaves assignments.

The generators live in :mod:`rlobj.data`; the checking lives here (plain Python) so that worker
processes can score without importing the data layer.
"""

import ast
import collections
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from rlobj.verifiers.base import Sample, require_completion, require_field
from rlobj.verifiers.extract import check_extract_mode, extract_answer

_BINARY_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_EXPRESSION_CHARS = re.compile(r"^[0-9+\-*/() \t.]*$")


def evaluate_expression(expression: str) -> tuple[Fraction, list[int]]:
    r"""Evaluate an arithmetic expression over non-negative integers with ``+ - * /`` and
    parentheses, exactly (``fractions.Fraction``), and return ``(value, integers used)``.

    Raises ``ValueError`` for anything else: other characters or operators, unary minus, decimals,
    exponentiation, division by zero, or an expression longer than 200 characters.

    Example:
        >>> evaluate_expression("(25 - 3) * 4 / 8")
        (Fraction(11, 1), [25, 3, 4, 8])
    """
    if len(expression) > 200 or not _EXPRESSION_CHARS.match(expression):
        raise ValueError(
            f"not an arithmetic expression over + - * / and parentheses: {expression!r:.80}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"cannot parse expression {expression!r:.80}: {error.msg}") from error
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if right == 0:
                raise ValueError("division by zero")
            return left / right
        raise ValueError(f"unsupported element {type(node).__name__} in {expression!r:.80}")

    return walk(tree.body), used


@dataclass(frozen=True)
class CountdownVerifier:
    r"""Reward 1 when the extracted equation uses only the given numbers (each at most as many times
    as it is given, or exactly once each with ``use_all``) and evaluates exactly to the target.

    $$ r = \mathbb{1}[\,\mathrm{eval}(e) = t \ \wedge\ \mathrm{multiset}(e) \subseteq N\,] $$

    A trailing ``= t`` in the answer is allowed. Samples need ``numbers`` (list of ints) and
    ``target`` (int). ``format_reward`` is given instead of 0 for an expression that parses and
    respects the numbers but misses the target (the TinyZero recipe uses 0.1; default 0).

    Example:
        >>> verifier = CountdownVerifier()
        >>> sample = {"numbers": [3, 7, 25, 50], "target": 83}
        >>> verifier("<answer>50 + 25 + 7 + 3 / 3</answer>", sample)  # 3 used twice
        0.0
        >>> verifier("<answer>(25 - 3) * 7 / 2 - 50 + 56</answer>", sample)  # 2 and 56 not given
        0.0
        >>> verifier("<answer>50 + 25 + 3 + 7 - 2</answer>", sample)
        0.0
        >>> verifier("<answer>(50 - 25 + 3) * 3 - 1</answer>", {"numbers": [1, 3, 3, 25, 50], "target": 83})
        1.0
        >>> verifier("<answer>50 + 25 + 7 = 82</answer>", {"numbers": [7, 25, 50], "target": 82})
        1.0
    """

    extract: str = "answer_tag"
    use_all: bool = False
    format_reward: float = 0.0

    def __post_init__(self) -> None:
        check_extract_mode(self.extract, "CountdownVerifier")
        if not 0.0 <= self.format_reward <= 1.0:
            raise ValueError(
                f"CountdownVerifier: argument 'format_reward' must be in [0, 1], got {self.format_reward}"
            )

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "CountdownVerifier")
        numbers = [int(number) for number in require_field(sample, "numbers", "CountdownVerifier")]
        target = Fraction(int(require_field(sample, "target", "CountdownVerifier")))
        span = extract_answer(completion, self.extract)
        if span is None:
            return 0.0
        if "=" in span:
            left, _, right = span.partition("=")
            if right.strip() and right.strip() != str(target):
                return 0.0
            span = left
        try:
            value, used = evaluate_expression(span)
        except ValueError:
            return 0.0
        available, requested = collections.Counter(numbers), collections.Counter(used)
        if requested - available or (self.use_all and requested != available):
            return 0.0
        return 1.0 if value == target else self.format_reward


def solve_countdown(numbers: Sequence[int], target: int, use_all: bool = False) -> str | None:
    """Find an expression reaching ``target`` from ``numbers`` (each used at most once, or all with
    ``use_all``) by exhaustive search over pairwise combinations with exact fractions; ``None`` if
    there is none. Exponential: meant for up to about 5 numbers.

    Example:
        >>> expression = solve_countdown([4, 6, 9], 30)
        >>> evaluate_expression(expression)[0]
        Fraction(30, 1)
        >>> solve_countdown([2, 2], 7) is None
        True
    """
    goal = Fraction(target)
    start = [(Fraction(number), str(number)) for number in numbers]
    if not use_all:
        for value, text in start:
            if value == goal:
                return text

    def search(items: list[tuple[Fraction, str]]) -> str | None:
        if len(items) == 1:
            return items[0][1] if items[0][0] == goal else None
        for i in range(len(items)):
            for j in range(len(items)):
                if i == j:
                    continue
                (a, text_a), (b, text_b) = items[i], items[j]
                rest = [item for index, item in enumerate(items) if index not in (i, j)]
                candidates = [(a - b, f"({text_a} - {text_b})")]
                if b != 0:
                    candidates.append((a / b, f"({text_a} / {text_b})"))
                if i < j:  # + and * are symmetric: one order suffices
                    candidates += [
                        (a + b, f"({text_a} + {text_b})"),
                        (a * b, f"({text_a} * {text_b})"),
                    ]
                for value, text in candidates:
                    if not use_all and value == goal:
                        return text
                    found = search([*rest, (value, text)])
                    if found is not None:
                        return found
        return None

    result = search(start)
    if result is not None and result.startswith("(") and result.endswith(")"):
        inner = result[1:-1]
        try:
            if evaluate_expression(inner)[0] == goal:
                return inner
        except ValueError:
            pass
    return result


_ASSIGNMENT = re.compile(
    r"\b([A-Z][a-z]*)\b\s+(?:is|was)\s+(?:a\s+)?(knight|knave)s?\b", re.IGNORECASE
)


def parse_knights_knaves(text: str) -> dict[str, str]:
    """Read ``"<Name> is a knight|knave"`` claims from text; a later claim about a name overrides
    an earlier one. Names are capitalised as written (``alice`` becomes ``Alice``).

    Example:
        >>> parse_knights_knaves("Alice is a knight, bob is a knave.")
        {'Alice': 'knight', 'Bob': 'knave'}
    """
    return {name.capitalize(): role.lower() for name, role in _ASSIGNMENT.findall(text)}


@dataclass(frozen=True)
class KnightsKnavesVerifier:
    r"""Reward 1 when the completion names the role of every person exactly as the unique solution.

    $$ r = \mathbb{1}[\,\forall p: \hat\rho(p) = \rho^\star(p)\,] $$

    The solution is ``sample["solution"]`` (a mapping name -> ``"knight"``/``"knave"``) or, when
    absent, parsed from ``sample["answer"]``. A person left unnamed counts as wrong.

    Example:
        >>> sample = {"answer": "Alice is a knight, Bob is a knave"}
        >>> KnightsKnavesVerifier()("Bob is a knave and Alice is a knight.", sample)
        1.0
        >>> KnightsKnavesVerifier()("Alice is a knight.", sample)
        0.0
    """

    extract: str = "whole"

    def __post_init__(self) -> None:
        check_extract_mode(self.extract, "KnightsKnavesVerifier")

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "KnightsKnavesVerifier")
        solution = sample.get("solution") if isinstance(sample, Mapping) else None
        if not isinstance(solution, Mapping):
            solution = parse_knights_knaves(
                str(require_field(sample, "answer", "KnightsKnavesVerifier"))
            )
        if not solution:
            raise ValueError(
                f"KnightsKnavesVerifier: sample holds no solution: {dict(sample)!r:.120}"
            )
        span = extract_answer(completion, self.extract)
        if span is None:
            return 0.0
        claimed = parse_knights_knaves(span)
        same = all(
            claimed.get(str(name).capitalize()) == str(role).lower()
            for name, role in solution.items()
        )
        return 1.0 if same else 0.0
