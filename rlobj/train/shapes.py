r"""A synthetic visual task generated here: images of coloured squares and questions about them.

Each record draws 1 to ``max_shapes`` non-overlapping filled squares of side ``side`` pixels,
each red, green or blue, on a black ``image_size x image_size`` image, and asks one question
(``question``):

* ``"count"``: ``"how many squares?"`` -> ``"2"`` (verifier :class:`~rlobj.verifiers.visual.CountAnswer`);
* ``"colour"``: one square; ``"what colour?"`` -> ``"red"`` (:class:`~rlobj.verifiers.visual.AttributeAnswer`);
* ``"box"``: one square; ``"where is the square?"`` -> ``"[x1,y1,x2,y2]"`` in pixels
  (:class:`~rlobj.verifiers.boxes.BoxIoU`; ``boxes`` holds every square's box for
  :class:`~rlobj.verifiers.visual.BoxSetIoU`);
* ``"mixed"``: count or colour, alternately by index.

Records: ``{"prompt", "images": [H x W x 3 uint8 array], "answer", "completion", "boxes",
"colours"}``; record ``i`` is drawn from ``random.Random(seed * 1_000_003 + i)`` (resumable).
"""

import random
from typing import Any

import numpy as np

from rlobj.data.tasks import TaskSource

__all__ = ["SHAPE_COLOURS", "ShapesTask", "draw_shapes"]

#: colour name -> RGB
SHAPE_COLOURS = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (40, 60, 240)}
QUESTIONS = ("count", "colour", "box", "mixed")
PROMPTS = {"count": "how many squares?", "colour": "what colour?", "box": "where is the square?"}


def draw_shapes(shapes: list[tuple[int, int, int, str]], image_size: int) -> np.ndarray:
    """An ``image_size x image_size x 3`` uint8 image: black, with each ``(x, y, side, colour)``
    square filled."""
    image = np.zeros((image_size, image_size, 3), dtype=np.uint8)
    for x, y, side, colour in shapes:
        image[y:y + side, x:x + side] = SHAPE_COLOURS[colour]
    return image


class ShapesTask(TaskSource):
    """Coloured squares with count / colour / box questions (see the module docstring).

    Args:
        seed: stream seed (train and evaluation streams use different seeds).
        question: ``"count"``, ``"colour"``, ``"box"`` or ``"mixed"``.
        image_size: image side in pixels.
        side: square side in pixels.
        max_shapes: most squares in a counting image.
    """

    def __init__(self, seed: int = 0, question: str = "count", image_size: int = 28, side: int = 6,
                 max_shapes: int = 3):
        if question not in QUESTIONS:
            raise ValueError(f"ShapesTask.question: expected one of {QUESTIONS}, got {question!r}")
        cells = (image_size // (side + 1)) ** 2
        if not 1 <= max_shapes <= cells:
            raise ValueError(f"ShapesTask.max_shapes: expected 1..{cells} squares of side {side} in {image_size} px, "
                             f"got {max_shapes!r}")
        self.seed, self.question, self.image_size, self.side, self.max_shapes = (
            int(seed), question, image_size, side, max_shapes)

    def record(self, index: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + int(index))
        question = self.question if self.question != "mixed" else ("count", "colour")[int(index) % 2]
        count = rng.randint(1, self.max_shapes) if question == "count" else 1
        grid = self.image_size // (self.side + 1)
        cells = rng.sample(range(grid * grid), count)  # one square per grid cell: never overlapping
        shapes = []
        for cell in cells:
            row, col = divmod(cell, grid)
            x = col * (self.side + 1) + rng.randint(0, self.image_size - grid * (self.side + 1))
            y = row * (self.side + 1) + rng.randint(0, self.image_size - grid * (self.side + 1))
            shapes.append((x, y, self.side, rng.choice(sorted(SHAPE_COLOURS))))
        boxes = [[x, y, x + side, y + side] for x, y, side, _ in shapes]
        answer = {"count": str(count), "colour": shapes[0][3],
                  "box": "[{},{},{},{}]".format(*boxes[0])}[question]
        return {"prompt": PROMPTS[question], "images": [draw_shapes(shapes, self.image_size)], "answer": answer,
                "completion": answer, "boxes": boxes, "colours": [s[3] for s in shapes]}

    def __repr__(self) -> str:
        return (f"ShapesTask(seed={self.seed}, question={self.question!r}, image_size={self.image_size}, "
                f"side={self.side}, max_shapes={self.max_shapes})")
