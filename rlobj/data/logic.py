r"""Knights and Knaves puzzles with a unique solution (checked by enumerating all assignments)."""

import itertools
import random
from dataclasses import dataclass
from typing import Any

from rlobj.data.tasks import check_task_arguments, in_split
from rlobj.verifiers.puzzles import KnightsKnavesVerifier

NAMES = ("Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi")
INTRO = "On an island, knights always tell the truth and knaves always lie."
QUESTION = "Who is a knight and who is a knave?"
MAX_ATTEMPTS = 10_000

# A statement is a nested tuple: ("is", person_index, is_knight) | ("not", s) | ("and"|"or"|"iff", s, s).


def evaluate_statement(statement: tuple, assignment: tuple[bool, ...]) -> bool:
    """Truth value of a statement when ``assignment[i]`` says whether person ``i`` is a knight.

    Example:
        >>> evaluate_statement(("and", ("is", 0, True), ("not", ("is", 1, True))), (True, False))
        True
    """
    kind = statement[0]
    if kind == "is":
        return assignment[statement[1]] == statement[2]
    if kind == "not":
        return not evaluate_statement(statement[1], assignment)
    left, right = (
        evaluate_statement(statement[1], assignment),
        evaluate_statement(statement[2], assignment),
    )
    return {"and": left and right, "or": left or right, "iff": left == right}[kind]


def render_statement(statement: tuple, names: tuple[str, ...], top: bool = True) -> str:
    """English text of a statement; compound parts are parenthesised so the reading is unambiguous.

    Example:
        >>> render_statement(("or", ("is", 0, True), ("is", 1, False)), ("Alice", "Bob"))
        'Alice is a knight or Bob is a knave'
    """
    kind = statement[0]
    if kind == "is":
        return f"{names[statement[1]]} is a {'knight' if statement[2] else 'knave'}"
    if kind == "not":
        text = f"it is not true that {render_statement(statement[1], names, top=False)}"
    else:
        joiner = {"and": "and", "or": "or", "iff": "if and only if"}[kind]
        text = f"{render_statement(statement[1], names, False)} {joiner} {render_statement(statement[2], names, False)}"
    return text if top else f"({text})"


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def solutions(statements: list[tuple]) -> list[tuple[bool, ...]]:
    """All assignments under which each speaker's statement is true exactly when the speaker is a
    knight (person ``i`` says ``statements[i]``)."""
    people = len(statements)
    return [
        assignment
        for assignment in itertools.product((True, False), repeat=people)
        if all(
            evaluate_statement(statements[i], assignment) == assignment[i] for i in range(people)
        )
    ]


@dataclass(frozen=True)
class KnightsKnavesTask:
    r"""Knights-and-Knaves puzzles: each of ``n_people`` islanders makes one statement about the
    others (or themselves); the puzzle is kept only if exactly one knight/knave assignment is
    consistent, which is found by enumerating all $2^n$ assignments.

    Difficulty: ``n_people`` (2..8) and ``depth`` (2..4: nesting of ``not`` / ``and`` / ``or`` /
    ``if and only if`` above plain "X is a knight/knave" claims). Depth 1 is refused: plain claims
    only fix parities ``x_i xor x_j``, so flipping every role of a connected group of people gives
    a second solution and no puzzle is ever unique.

    Answer format: ``"Alice is a knight, Bob is a knave"`` (names in order); the sample also holds
    ``solution`` (name -> role) for the verifier.

    Example:
        >>> import random
        >>> sample = KnightsKnavesTask(n_people=2).sample(random.Random(0))
        >>> KnightsKnavesTask().verifier()(sample["answer"], sample)
        1.0

    References:
        Xie et al., "On Memorization of Large Language Models in Logical Reasoning" (the K&K
        benchmark), arXiv:2410.23123; Logic-RL, arXiv:2502.14768.
    """

    n_people: int = 3
    depth: int = 2
    split: str | None = None
    test_fraction: float = 0.1
    extract: str = "whole"

    def __post_init__(self) -> None:
        if not (isinstance(self.n_people, int) and 2 <= self.n_people <= len(NAMES)):
            raise ValueError(
                f"KnightsKnavesTask: argument 'n_people' must be an int in [2, {len(NAMES)}], got {self.n_people!r}"
            )
        if not (isinstance(self.depth, int) and 2 <= self.depth <= 4):
            raise ValueError(
                f"KnightsKnavesTask: argument 'depth' must be an int in [2, 4] (with plain 'X is a knight/knave' "
                f"statements alone a solution is never unique), got {self.depth!r}"
            )
        check_task_arguments("KnightsKnavesTask", self.extract, self.split, self.test_fraction)

    def _statement(self, rng: random.Random, depth: int) -> tuple:
        if depth <= 1 or rng.random() < 0.3:
            return ("is", rng.randrange(self.n_people), rng.random() < 0.5)
        kind = rng.choice(("not", "and", "or", "iff"))
        if kind == "not":
            return ("not", self._statement(rng, depth - 1))
        return (kind, self._statement(rng, depth - 1), self._statement(rng, depth - 1))

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """Draw one puzzle with a unique solution."""
        names = NAMES[: self.n_people]
        for _ in range(MAX_ATTEMPTS):
            statements = [self._statement(rng, self.depth) for _ in range(self.n_people)]
            found = solutions(statements)
            if len(found) != 1:
                continue
            said = " ".join(
                f'{names[i]} says: "{_sentence_case(render_statement(statements[i], names))}."'
                for i in range(self.n_people)
            )
            prompt = f"{INTRO} {said} {QUESTION}"
            if not in_split(prompt, self.split, self.test_fraction):
                continue
            roles = {names[i]: "knight" if found[0][i] else "knave" for i in range(self.n_people)}
            answer = ", ".join(f"{name} is a {role}" for name, role in roles.items())
            return {
                "prompt": prompt,
                "answer": answer,
                "task": "knights_knaves",
                "solution": roles,
                "statements": [repr(s) for s in statements],
            }
        raise RuntimeError(
            f"KnightsKnavesTask: no uniquely solvable puzzle in {MAX_ATTEMPTS} attempts"
        )

    def verifier(self) -> KnightsKnavesVerifier:
        """Checks every person's role against the unique solution."""
        return KnightsKnavesVerifier(extract=self.extract)
