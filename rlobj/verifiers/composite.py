r"""Weighted combinations of verifiers (e.g. correctness + format, as in DeepSeek-R1)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rlobj.verifiers.base import Sample, Verifier


@dataclass(frozen=True)
class WeightedSum:
    r"""Weighted sum of several verifiers' rewards.

    $$ r = \sum_i w_i\, V_i(y, s) $$

    With non-negative weights summing to 1 and every part in $[0, 1]$ the result stays in
    $[0, 1]$ (the pool's default valid range); other weights are allowed, and the pool's
    ``reward_range`` must then be widened to match.

    Args:
        verifiers: the parts $V_i$ (any :class:`~rlobj.verifiers.Verifier`).
        weights: the $w_i$, one per verifier, finite.

    Example:
        >>> from rlobj.verifiers import ExactMatch, TagFormat
        >>> reward = WeightedSum((ExactMatch(extract="answer_tag"), TagFormat()), (0.9, 0.1))
        >>> reward("<think>ok</think><answer>4</answer>", {"answer": "4"})
        1.0
        >>> reward("<answer>4</answer>", {"answer": "4"})
        0.9
    """

    verifiers: tuple[Verifier, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        verifiers: Sequence = tuple(self.verifiers)
        weights = tuple(float(weight) for weight in self.weights)
        if not verifiers:
            raise ValueError(
                "WeightedSum: argument 'verifiers' must hold at least one verifier, got none"
            )
        if len(verifiers) != len(weights):
            raise ValueError(
                f"WeightedSum: arguments 'verifiers' and 'weights' must have the same length, "
                f"got {len(verifiers)} verifiers and {len(weights)} weights"
            )
        for index, part in enumerate(verifiers):
            if not callable(part):
                raise TypeError(
                    f"WeightedSum: verifiers[{index}] must be callable, got {type(part).__name__}"
                )
        if not all(math.isfinite(weight) for weight in weights):
            raise ValueError(f"WeightedSum: argument 'weights' must be finite, got {weights}")
        object.__setattr__(self, "verifiers", verifiers)
        object.__setattr__(self, "weights", weights)

    def __call__(self, completion: str, sample: Sample) -> float:
        return float(
            sum(
                weight * float(part(completion, sample))
                for part, weight in zip(self.verifiers, self.weights, strict=True)
            )
        )
