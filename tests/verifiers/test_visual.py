"""Visual verifiers: set-matching box reward, counting and attribute answers."""

import itertools

import pytest

from rlobj.verifiers import (
    AttributeAnswer,
    BoxSetIoU,
    CountAnswer,
    box_iou,
    match_boxes,
    parse_boxes,
)


def test_parse_boxes_takes_bracketed_groups_of_four():
    assert parse_boxes("x [1,2,3,4] [5, 6] [0.5, 1, 2e0, 3]") == [(1, 2, 3, 4), (0.5, 1, 2, 3)]
    assert parse_boxes("no boxes 1 2 3 4") == []


def test_set_reward_exact_missing_extra_and_empty():
    gold = {"boxes": [[0, 0, 2, 2], [5, 5, 7, 7]]}
    assert BoxSetIoU()("[5,5,7,7] [0,0,2,2]", gold) == 1.0  # order does not matter
    assert BoxSetIoU()("[0,0,2,2]", gold) == 0.5  # one missing
    assert BoxSetIoU()("[0,0,2,2] [5,5,7,7] [9,9,10,10]", gold) == pytest.approx(2 / 3)  # one extra
    assert BoxSetIoU()("nothing", gold) == 0.0
    assert BoxSetIoU()("nothing", {"boxes": []}) == 1.0
    assert BoxSetIoU()("[0,0,1,2]", {"boxes": [[0, 0, 2, 2]]}) == pytest.approx(0.5)
    assert BoxSetIoU(threshold=0.6)("[0,0,1,2]", {"boxes": [[0, 0, 2, 2]]}) == 0.0
    assert BoxSetIoU(threshold=0.5)("[0,0,1,2]", {"boxes": [[0, 0, 2, 2]]}) == 1.0
    assert BoxSetIoU()("[2,2,0,0]", {"boxes": [[0, 0, 2, 2]]}) == 0.0  # negative extent matches nothing


def test_matching_maximises_the_summed_iou_where_greedy_does_not():
    # greedy takes the best single pair (p0, g0) = 0.6 and leaves p1 with g1 = 0; the optimum pairs crosswise
    predicted = [(0, 0, 10, 10), (0, 0, 10, 6)]
    reference = [(0, 0, 10, 6), (0, 4, 10, 10)]
    pairs = match_boxes(predicted, reference)
    best = max(sum(box_iou(predicted[i], reference[j]) for i, j in zip(range(2), perm, strict=True))
               for perm in itertools.permutations(range(2)))
    assert sum(iou for _, _, iou in pairs) == pytest.approx(best)
    assert {(i, j) for i, j, _ in pairs} == {(0, 1), (1, 0)}


def test_bad_references_are_named():
    with pytest.raises(ValueError, match="4-number boxes"):
        BoxSetIoU()("[0,0,1,1]", {"boxes": [[0, 0, 1]]})
    with pytest.raises(ValueError, match="threshold"):
        BoxSetIoU(threshold=2.0)
    with pytest.raises(ValueError, match="must be an integer"):
        CountAnswer()("3", {"answer": "three"})
    with pytest.raises(ValueError, match="tolerance"):
        CountAnswer(tolerance=-1)
    with pytest.raises(ValueError, match="a word or a list"):
        AttributeAnswer()("red", {"answer": 3})


def test_count_and_attribute_answers():
    assert CountAnswer()("3", {"answer": "3"}) == 1.0
    assert CountAnswer()(" 2 squares, not 3", {"answer": 3}) == 0.0  # the first integer counts
    assert CountAnswer()("none", {"answer": 3}) == 0.0
    assert CountAnswer(tolerance=1)("2", {"answer": 3}) == 0.5
    assert AttributeAnswer()("red.", {"answer": "red"}) == 1.0
    assert AttributeAnswer()("Grey", {"answer": ["gray", "silver"]}) == 1.0
    assert AttributeAnswer()("blue red", {"answer": "red"}) == 0.0
