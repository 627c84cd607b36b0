"""The aggregation step (rlobj/algebra/aggregation.py): each mode against its formula by hand, the
global normalizer (micro-batches summed equal the whole batch), own-mask and scalar parts, a part's
own aggregation, and the errors."""

import pytest
import torch

from rlobj.algebra.aggregation import (
    aggregate,
    constant_normalizer,
    length_weighted,
    seq_mean_token_mean,
    seq_mean_token_sum,
    token_mean,
)
from rlobj.algebra.state import LossPart, Normalizer, State
from rlobj.ops.errors import RlobjInputError

F64 = torch.float64
# row 0: losses 1, 2, 3 (3 tokens); row 1: loss 4 (1 token); row 2: losses 5, 6 (2 tokens)
VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [5.0, 6.0, 0.0]], dtype=F64)
MASK = torch.tensor([[True, True, True], [True, False, False], [True, True, False]])


def _state(mode=None, rows=slice(None), normalizer=None, **part):
    state = State.from_batch(logp=torch.zeros(3, 3, dtype=F64)[rows], mask=MASK[rows])
    loss = LossPart(values=VALUES[rows], mask=MASK[rows], **part)
    return state.update(aggregation=mode, normalizer=normalizer, parts={"policy": loss})


@pytest.mark.parametrize(("mode", "expected"), [
    (token_mean(), 21 / 6),  # sum 21 over 6 tokens
    (seq_mean_token_mean(), (6 / 3 + 4 / 1 + 11 / 2) / 3),
    (seq_mean_token_sum(), 21 / 3),
    (constant_normalizer(max_tokens=4), 21 / (3 * 4)),
    (constant_normalizer(max_tokens=4, per_sequence=False), 21 / 4),
    (length_weighted(), 21 / 3),  # |y_i| * mean_i = sum_i: seq_mean_token_sum for per-token losses
])
def test_each_mode_by_hand(mode, expected):
    loss, parts = aggregate(_state(mode))
    assert float(loss) == pytest.approx(expected, rel=1e-12) and float(parts["policy"]) == pytest.approx(expected)


def test_no_aggregation_term_means_token_mean():
    assert float(aggregate(_state())[0]) == pytest.approx(21 / 6)


@pytest.mark.parametrize("mode", [token_mean(), seq_mean_token_mean(), seq_mean_token_sum(), constant_normalizer(8)])
def test_micro_batches_with_the_global_normalizer_sum_to_the_whole(mode):
    whole = float(aggregate(_state(mode))[0])
    normalizer = Normalizer.from_masks([MASK[:2], MASK[2:]])
    parts = [float(aggregate(_state(mode, rows, normalizer))[0]) for rows in (slice(0, 2), slice(2, 3))]
    assert sum(parts) == pytest.approx(whole, rel=1e-12)


def test_own_scalar_and_per_part_aggregation():
    own = LossPart(values=VALUES, mask=torch.tensor([[True, False, False], [False, False, False], [True, True, False]]),
                   normalize="own")
    state = _state(token_mean()).update(parts={"own": own})
    assert float(aggregate(state)[0]) == pytest.approx((1 + 5 + 6) / 3)  # its own 3 tokens
    scalar = LossPart(values=torch.tensor(0.7, dtype=F64), mask=MASK, normalize="scalar")
    assert float(aggregate(_state(token_mean()).update(parts={"s": scalar}))[0]) == pytest.approx(0.7)
    half = Normalizer(tokens=6.0, seqs=6.0)  # this micro-batch holds 3 of 6 sequences: half the scalar
    assert float(aggregate(_state(token_mean(), normalizer=half).update(parts={"s": scalar}))[0]) == pytest.approx(0.35)
    mixed = _state(constant_normalizer(4), aggregation=token_mean())
    assert float(aggregate(mixed)[0]) == pytest.approx(21 / 6)  # the part's own mode wins


def test_errors_name_what_is_wrong():
    with pytest.raises(RlobjInputError, match="the objective produced no loss part"):
        aggregate(_state().update(parts={}))
    empty = State.from_batch(logp=torch.zeros(1, 2), mask=torch.zeros(1, 2, dtype=torch.bool))
    empty = empty.update(parts={"policy": LossPart(values=torch.zeros(1, 2), mask=empty.mask)})
    with pytest.raises(RlobjInputError, match="mask: the batch has no valid token"):
        aggregate(empty)
    with pytest.raises(RlobjInputError, match=r"constant_normalizer.max_tokens: expected > 0, got 0"):
        constant_normalizer(max_tokens=0)
