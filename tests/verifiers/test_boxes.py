"""Box IoU (rlobj/verifiers/boxes.py): hand values, a unit-cell grid reference on integer boxes
(symmetric, bounded), the BoxIoU verifier, errors."""


import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlobj.verifiers import (
    BoxIoU,
    box_iou,
    parse_box,
)


def test_box_iou_hand_values():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, 4, 4), (0, 0, 2, 2)) == pytest.approx(0.25)
    assert box_iou((0, 0, 2, 2), (1, 1, 2, 2), box_format="xywh") == pytest.approx(1 / 7)
    assert box_iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # zero-area union


def _grid_iou(box_a, box_b) -> float:
    # slow reference: count unit cells of integer boxes
    cells_a = {(x, y) for x in range(box_a[0], box_a[2]) for y in range(box_a[1], box_a[3])}
    cells_b = {(x, y) for x in range(box_b[0], box_b[2]) for y in range(box_b[1], box_b[3])}
    union = cells_a | cells_b
    return len(cells_a & cells_b) / len(union) if union else 0.0


_coordinate_pair = st.tuples(st.integers(0, 8), st.integers(0, 8)).map(sorted)
_integer_box = st.tuples(_coordinate_pair, _coordinate_pair).map(
    lambda p: (p[0][0], p[1][0], p[0][1], p[1][1])
)


@given(_integer_box, _integer_box)
def test_iou_matches_grid_reference_is_symmetric_and_bounded(box_a, box_b):
    forward = box_iou(box_a, box_b)
    assert 0.0 <= forward <= 1.0
    assert forward == pytest.approx(box_iou(box_b, box_a))
    assert forward == pytest.approx(_grid_iou(box_a, box_b))
    if (box_a[2] - box_a[0]) * (box_a[3] - box_a[1]) > 0:
        assert box_iou(box_a, box_a) == 1.0


def test_box_iou_verifier():
    assert BoxIoU()("box: [0, 0, 2, 2]", {"answer": [1, 1, 3, 3]}) == pytest.approx(1 / 7)
    assert BoxIoU()("(0,0,2,2)", {"answer": "[1, 1, 3, 3]"}) == pytest.approx(1 / 7)
    assert BoxIoU(threshold=0.5)("[0, 0, 2, 2]", {"answer": [0, 0, 2, 1]}) == 1.0
    assert BoxIoU(threshold=0.6)("[0, 0, 2, 2]", {"answer": [0, 0, 2, 1]}) == 0.0
    assert BoxIoU()("no box", {"answer": [0, 0, 1, 1]}) == 0.0
    assert BoxIoU()("[2, 2, 0, 0]", {"answer": [0, 0, 1, 1]}) == 0.0
    assert parse_box("1 2 3") is None


def test_box_errors():
    with pytest.raises(ValueError, match="'box_a' must be 4 finite numbers"):
        box_iou((0, 0, 1), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="'box_b' has negative width"):
        box_iou((0, 0, 1, 1), (2, 0, 1, 1))
    with pytest.raises(ValueError, match="'threshold' must be None or in"):
        BoxIoU(threshold=1.5)
    with pytest.raises(ValueError, match="reference box must be 4 numbers"):
        BoxIoU()("[0,0,1,1]", {"answer": [0, 1]})
