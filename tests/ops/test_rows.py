"""The row slicer (rlobj/ops/rows.py): which values are cut and which are passed through, and a
dataclass batch cut field by field (fields with ``select`` cut themselves; ``skip`` keeps values)."""

import dataclasses

import torch

from rlobj.ops.rows import cut_rows, take_rows_of


def test_cut_rows_cuts_per_row_values_only():
    ids = torch.arange(8).reshape(4, 2)
    assert cut_rows(ids, torch.tensor([3, 1]), 4).tolist() == [[6, 7], [2, 3]]
    assert cut_rows(ids, slice(1, 3), 4).tolist() == [[2, 3], [4, 5]]
    assert cut_rows(["a", "b", "c", "d"], torch.tensor([0, 2]), 4) == ["a", "c"]
    assert cut_rows(("a", "b", "c", "d"), slice(2, None), 4) == ("c", "d")
    # not one entry per row: returned unchanged (the same object)
    scalar, other, text = torch.tensor(3.0), torch.zeros(3, 5), ("x", "y")
    assert cut_rows(scalar, torch.tensor([0]), 4) is scalar
    assert cut_rows(other, torch.tensor([0]), 4) is other
    assert cut_rows(text, torch.tensor([0]), 4) is text
    assert cut_rows({"k": 1}, slice(0, 1), 1) == {"k": 1}


class Pixels:
    """A per-row field that knows how to cut itself (as vision inputs do)."""

    def __init__(self, rows):
        self.rows = rows

    def select(self, rows):
        return Pixels(self.rows[rows] if isinstance(rows, slice) else [self.rows[i] for i in rows.tolist()])


@dataclasses.dataclass
class Batch:
    ids: torch.Tensor
    names: tuple
    pixels: Pixels
    pad: int


def test_take_rows_of_cuts_every_field_and_keeps_skipped_ones():
    batch = Batch(torch.tensor([10, 11, 12]), ("a", "b", "c"), Pixels(["p0", "p1", "p2"]), pad=3)
    out = take_rows_of(batch, [2, 0], 3, pad=0)
    assert out.ids.tolist() == [12, 10] and out.names == ("c", "a") and out.pixels.rows == ["p2", "p0"]
    assert out.pad == 0  # given as is, not cut
    assert batch.ids.tolist() == [10, 11, 12]  # the input is not modified
    same = take_rows_of(batch, slice(None), 3)
    assert same.ids.tolist() == [10, 11, 12] and same.names == ("a", "b", "c") and same.pad == 3
