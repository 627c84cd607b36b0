"""The synthetic coloured-squares task: deterministic records whose answers match the pixels."""

import numpy as np
import pytest

from rlobj.train.shapes import SHAPE_COLOURS, ShapesTask
from rlobj.verifiers import AttributeAnswer, BoxIoU, BoxSetIoU, CountAnswer


def _squares(image, colour):
    return int((image == np.array(SHAPE_COLOURS[colour], dtype=np.uint8)).all(-1).sum())


@pytest.mark.parametrize("question", ["count", "colour", "box", "mixed"])
def test_records_are_deterministic_and_their_answers_match_the_pixels(question):
    task = ShapesTask(seed=4, question=question)
    assert all(np.array_equal(a["images"][0], b["images"][0]) and a["answer"] == b["answer"]
               for a, b in zip(task.records(0, 20), task.records(0, 20), strict=True))
    for record in task.records(0, 40):
        image = record["images"][0]
        assert image.shape == (28, 28, 3) and image.dtype == np.uint8
        painted = sum(_squares(image, c) for c in SHAPE_COLOURS)
        assert painted == 36 * len(record["boxes"])  # non-overlapping 6 x 6 squares
        for (x1, y1, x2, y2), colour in zip(record["boxes"], record["colours"], strict=True):
            assert (image[y1:y2, x1:x2] == np.array(SHAPE_COLOURS[colour], dtype=np.uint8)).all()
        verifier = {"how many squares?": CountAnswer(), "what colour?": AttributeAnswer(),
                    "where is the square?": BoxIoU()}[record["prompt"]]
        assert verifier(record["answer"], record) == 1.0
        assert BoxSetIoU()(" ".join(str(b) for b in record["boxes"]), record) == 1.0


def test_counts_cover_the_range_and_bad_settings_are_named():
    counts = {ShapesTask(seed=0).record(i)["answer"] for i in range(60)}
    assert counts == {"1", "2", "3"}
    with pytest.raises(ValueError, match="question"):
        ShapesTask(question="size")
    with pytest.raises(ValueError, match="max_shapes"):
        ShapesTask(max_shapes=50)
