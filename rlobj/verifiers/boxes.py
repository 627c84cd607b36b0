r"""Bounding-box reward: intersection over union (for grounding / detection RLVR, e.g. Visual-RFT)."""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rlobj.verifiers.base import Sample, require_completion, require_field
from rlobj.verifiers.extract import check_extract_mode, extract_answer

_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
BOX_FORMATS = ("xyxy", "xywh")


def _as_xyxy(box: Sequence[float], box_format: str) -> tuple[float, float, float, float]:
    x1, y1, third, fourth = (float(value) for value in box)
    return (x1, y1, third, fourth) if box_format == "xyxy" else (x1, y1, x1 + third, y1 + fourth)


def box_iou(box_a: Sequence[float], box_b: Sequence[float], box_format: str = "xyxy") -> float:
    r"""Intersection over union of two axis-aligned boxes.

    $$ \mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A| + |B| - |A \cap B|} $$

    Boxes are ``(x1, y1, x2, y2)`` with ``x1 <= x2, y1 <= y2`` (``box_format="xyxy"``) or
    ``(x, y, w, h)`` with ``w, h >= 0`` (``"xywh"``). Two boxes whose union has zero area give 0.
    Raises ``ValueError`` for a box that is not 4 finite numbers or has negative extent.

    Example:
        >>> box_iou((0, 0, 2, 2), (1, 1, 3, 3))  # overlap 1, union 4 + 4 - 1
        0.14285714285714285
        >>> box_iou((0, 0, 1, 1), (0, 0, 1, 1))
        1.0
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(
            f"box_iou: argument 'box_format' must be one of {BOX_FORMATS}, got {box_format!r}"
        )
    corners = []
    for name, box in (("box_a", box_a), ("box_b", box_b)):
        if len(box) != 4 or not all(math.isfinite(float(value)) for value in box):
            raise ValueError(f"box_iou: argument {name!r} must be 4 finite numbers, got {box!r}")
        x1, y1, x2, y2 = _as_xyxy(box, box_format)
        if x2 < x1 or y2 < y1:
            raise ValueError(
                f"box_iou: argument {name!r} has negative width or height ({box_format}): {box!r}"
            )
        corners.append((x1, y1, x2, y2))
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = corners
    intersection = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - intersection
    return intersection / union if union > 0 else 0.0


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The last four numbers in ``text`` as a box, or ``None`` when there are fewer than four.

    Example:
        >>> parse_box("the cat is at [10, 20.5, 30, 40]")
        (10.0, 20.5, 30.0, 40.0)
    """
    numbers = _FLOAT.findall(text)
    if len(numbers) < 4:
        return None
    values = tuple(float(number) for number in numbers[-4:])
    return values if all(math.isfinite(value) for value in values) else None  # type: ignore[return-value]


@dataclass(frozen=True)
class BoxIoU:
    r"""Reward from the IoU between the predicted box (last four numbers of the extracted span)
    and the reference ``sample[answer_key]`` (a sequence of 4 numbers or a string holding them).

    $$ r = \mathrm{IoU}(\hat b, b^\star) \quad\text{or, with a threshold } \tau,\quad
       r = \mathbb{1}[\mathrm{IoU}(\hat b, b^\star) \ge \tau] $$

    A missing or malformed predicted box (fewer than 4 numbers, negative extent) scores 0.

    Args:
        threshold: ``None`` (default) for the continuous IoU reward, else $\tau \in [0, 1]$.
        box_format: ``"xyxy"`` (default) or ``"xywh"``, for both boxes.
        extract: extraction mode for the completion, default ``"whole"``.
        answer_key: sample field with the reference box. Default ``"answer"``.

    Example:
        >>> BoxIoU()("[0, 0, 2, 2]", {"answer": [1, 1, 3, 3]})
        0.14285714285714285
        >>> BoxIoU(threshold=0.5)("[0, 0, 2, 2]", {"answer": [0, 0, 2, 1.5]})
        1.0

    References:
        Liu et al., "Visual-RFT: Visual Reinforcement Fine-Tuning", arXiv:2503.01785 (IoU reward).
    """

    threshold: float | None = None
    box_format: str = "xyxy"
    extract: str = "whole"
    answer_key: str = "answer"

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(
                f"BoxIoU: argument 'threshold' must be None or in [0, 1], got {self.threshold}"
            )
        if self.box_format not in BOX_FORMATS:
            raise ValueError(
                f"BoxIoU: argument 'box_format' must be one of {BOX_FORMATS}, got {self.box_format!r}"
            )
        check_extract_mode(self.extract, "BoxIoU")

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "BoxIoU")
        reference = require_field(sample, self.answer_key, "BoxIoU")
        gold = parse_box(reference) if isinstance(reference, str) else tuple(reference)
        if gold is None or len(gold) != 4:
            raise ValueError(f"BoxIoU: reference box must be 4 numbers, got {reference!r}")
        span = extract_answer(completion, self.extract)
        predicted = None if span is None else parse_box(span)
        if predicted is None:
            return 0.0
        x1, y1, x2, y2 = _as_xyxy(predicted, self.box_format)
        if x2 < x1 or y2 < y1:
            return 0.0
        iou = box_iou(predicted, gold, self.box_format)
        if self.threshold is None:
            return iou
        return 1.0 if iou >= self.threshold else 0.0
