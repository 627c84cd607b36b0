r"""Verifiers for visual tasks: sets of boxes (Visual-RFT detection), counts and attributes.

:class:`~rlobj.verifiers.boxes.BoxIoU` scores one box; :class:`BoxSetIoU` scores a set of
predicted boxes against a set of reference boxes through a one-to-one matching that maximises
the summed IoU (:func:`match_boxes`), normalised by the larger set so missing and extra boxes
both cost. :class:`CountAnswer` compares the first integer of a completion with a count;
:class:`AttributeAnswer` the first word with an attribute (a colour, a shape), with synonyms.
"""

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rlobj.verifiers.base import Sample, require_completion, require_field
from rlobj.verifiers.boxes import _FLOAT, box_iou

__all__ = ["parse_boxes", "match_boxes", "BoxSetIoU", "CountAnswer", "AttributeAnswer"]

_INT = re.compile(r"[-+]?\d+")
_WORD = re.compile(r"[a-zA-Z]+")
#: brute-force matching up to this many boxes on the smaller side; greedy above (documented)
EXACT_MATCH_LIMIT = 6


def parse_boxes(text: str) -> list[tuple[float, float, float, float]]:
    """Every bracketed group of four numbers ``[x1, y1, x2, y2]`` in ``text``, in order.

    Example:
        >>> parse_boxes("[0,0,2,2] and [1, 1, 3, 3.5]")
        [(0.0, 0.0, 2.0, 2.0), (1.0, 1.0, 3.0, 3.5)]
    """
    boxes = []
    for group in re.findall(r"\[([^\[\]]*)\]", text):
        numbers = _FLOAT.findall(group)
        if len(numbers) == 4:
            boxes.append(tuple(float(n) for n in numbers))
    return boxes


def _valid(box) -> bool:
    return box[2] >= box[0] and box[3] >= box[1]


def match_boxes(predicted: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> list[tuple[int, int, float]]:
    r"""A one-to-one matching ``[(i, j, IoU)]`` of predicted box ``i`` to reference box ``j``.

    Maximises $\sum \mathrm{IoU}$ exactly (every assignment of the smaller set into the larger,
    up to ``EXACT_MATCH_LIMIT`` = 6 boxes on the smaller side); above that, greedily by highest
    IoU first. A predicted box with negative extent matches nothing.

    Example:
        >>> match_boxes([(0, 0, 2, 2), (5, 5, 6, 6)], [(5, 5, 6, 6)])
        [(1, 0, 1.0)]
    """
    pred = [(i, b) for i, b in enumerate(predicted) if _valid(b)]
    iou = {(i, j): box_iou(b, r) for i, b in pred for j, r in enumerate(reference)}
    small, large = ([i for i, _ in pred], list(range(len(reference))))
    swap = len(small) > len(large)
    if swap:
        small, large = large, small
    key = (lambda s, t: (t, s)) if swap else (lambda s, t: (s, t))
    if len(small) <= EXACT_MATCH_LIMIT:
        best, best_sum = (), -1.0
        for chosen in itertools.permutations(large, len(small)):
            total = sum(iou[key(s, t)] for s, t in zip(small, chosen, strict=True))
            if total > best_sum:
                best, best_sum = chosen, total
        pairs = [key(s, t) for s, t in zip(small, best, strict=True)]
    else:
        pairs, used_i, used_j = [], set(), set()
        for (i, j), _ in sorted(iou.items(), key=lambda item: -item[1]):
            if i not in used_i and j not in used_j:
                pairs.append((i, j))
                used_i.add(i)
                used_j.add(j)
    return sorted((i, j, iou[(i, j)]) for i, j in pairs if iou[(i, j)] > 0)


@dataclass(frozen=True)
class BoxSetIoU:
    r"""Set-matching box reward (Visual-RFT's detection IoU reward, read as a matching):

    $$ r = \frac{1}{\max(|\hat B|, |B^\star|)} \sum_{(i, j) \in M} \mathrm{IoU}(\hat b_i, b^\star_j) $$

    with $M$ the IoU-maximising one-to-one matching (:func:`match_boxes`); boxes are the
    bracketed ``[x1, y1, x2, y2]`` groups of the completion (:func:`parse_boxes`). $r \in [0, 1]$:
    1 only for the exact set, each missing or extra box lowers it. No box and an empty reference
    give 1; no box for a non-empty reference gives 0. With ``threshold`` $\tau$, a matched pair
    counts 1 when its IoU $\ge \tau$, else 0 (an F1-like count).

    Args:
        answer_key: sample field with the reference boxes (a list of 4-number sequences).
        threshold: None (continuous IoU) or $\tau \in [0, 1]$.

    Example:
        >>> BoxSetIoU()("[0,0,2,2] [5,5,6,6]", {"boxes": [[5, 5, 6, 6]]})
        0.5

    References:
        Liu et al., "Visual-RFT: Visual Reinforcement Fine-Tuning", arXiv:2503.01785: the
        detection reward sums an IoU reward over matched boxes (and a confidence reward, not
        modelled here: completions carry no confidences). The normalisation by the larger set
        is this library's reading, not the paper's formula.
    """

    answer_key: str = "boxes"
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"BoxSetIoU: argument 'threshold' must be None or in [0, 1], got {self.threshold}")

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "BoxSetIoU")
        reference = require_field(sample, self.answer_key, "BoxSetIoU")
        if not isinstance(reference, Sequence) or any(len(b) != 4 for b in reference):
            raise ValueError(f"BoxSetIoU: '{self.answer_key}' must be a list of 4-number boxes, got {reference!r}")
        predicted = parse_boxes(completion)
        if not predicted and not reference:
            return 1.0
        pairs = match_boxes(predicted, [tuple(float(v) for v in b) for b in reference])
        scores = [iou if self.threshold is None else float(iou >= self.threshold) for _, _, iou in pairs]
        return sum(scores) / max(len(predicted), len(reference))


@dataclass(frozen=True)
class CountAnswer:
    r"""Counting reward: 1 when the completion's first integer equals ``sample[answer_key]``, else 0.

    With ``tolerance`` $k$: $r = \max(0, 1 - |\hat n - n| / (k + 1))$ (partial credit for a
    near miss; 0 default is exact). No integer scores 0.

    Example:
        >>> CountAnswer()("3 squares", {"answer": "3"}), CountAnswer()("two", {"answer": 2})
        (1.0, 0.0)
    """

    answer_key: str = "answer"
    tolerance: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, int) or self.tolerance < 0:
            raise ValueError(f"CountAnswer: argument 'tolerance' must be an int >= 0, got {self.tolerance!r}")

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "CountAnswer")
        reference = require_field(sample, self.answer_key, "CountAnswer")
        try:
            gold = int(str(reference).strip())
        except ValueError as error:
            raise ValueError(f"CountAnswer: '{self.answer_key}' must be an integer, got {reference!r}") from error
        found = _INT.search(completion)
        if found is None:
            return 0.0
        return max(0.0, 1.0 - abs(int(found.group()) - gold) / (self.tolerance + 1))


@dataclass(frozen=True)
class AttributeAnswer:
    r"""Attribute reward: 1 when the completion's first word (lower-cased, synonyms mapped) equals
    the reference attribute ``sample[answer_key]`` (a word, or a list of accepted words).

    Example:
        >>> AttributeAnswer()(" Grey.", {"answer": "gray"}), AttributeAnswer()("red", {"answer": ["blue"]})
        (1.0, 0.0)
    """

    answer_key: str = "answer"
    synonyms: Mapping[str, str] = field(default_factory=lambda: {"grey": "gray", "colour": "color"})

    def _norm(self, word: str) -> str:
        word = word.lower()
        return self.synonyms.get(word, word)

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "AttributeAnswer")
        reference = require_field(sample, self.answer_key, "AttributeAnswer")
        accepted = [reference] if isinstance(reference, str) else reference
        if not isinstance(accepted, (list, tuple)) or not accepted or not all(isinstance(a, str) for a in accepted):
            raise ValueError(f"AttributeAnswer: '{self.answer_key}' must be a word or a list of words, got {reference!r}")
        found = _WORD.search(completion)
        return float(found is not None and self._norm(found.group()) in {self._norm(a.strip()) for a in accepted})
