"""The state terms read and write (rlobj/algebra/state.py): what from_batch validates and sanitises,
the functional updates, the errors require/require_part give, per-term stored state, the lazy
entropy, and the normalizer's global counts."""

import math

import pytest
import torch

from rlobj.algebra.state import Normalizer, State
from rlobj.ops.errors import RlobjInputError

MASK = torch.tensor([[True, True, False], [True, False, False]])


def _fields(**changes):
    fields = dict(logp=torch.tensor([[-0.5, -1.0, 7.0], [-0.2, 9.0, 9.0]]), mask=MASK)
    fields.update(changes)
    return fields


def test_from_batch_zeroes_padding_detaches_old_logp_and_expands_advantages():
    old = torch.tensor([[-0.4, -0.9, 3.0], [-0.1, 5.0, 5.0]], requires_grad=True)
    state = State.from_batch(**_fields(logp_old=old, advantages=torch.tensor([1.0, -2.0]),
                                       mask=MASK.int(), rewards=[1, 0], group_ids=torch.tensor([0, 0])))
    assert state.mask.dtype == torch.bool
    assert torch.equal(state.logp, torch.tensor([[-0.5, -1.0, 0.0], [-0.2, 0.0, 0.0]]))  # padding zeroed
    assert not state.logp_old.requires_grad and state.logp_old[0, 2] == 0.0
    assert state.advantages.tolist() == [[1.0, 1.0, 0.0], [-2.0, 0.0, 0.0]]
    assert state.rewards.dtype == torch.float32 and state.batch_size == 2 and state.extras == {}


@pytest.mark.parametrize(("changes", "message"), [
    ({"logpp": torch.zeros(2, 3)}, r"unknown batch field\(s\) \['logpp'\]"),
    ({"logp": None}, "logp: required field is missing"),
    ({"logp": torch.zeros(2)}, r"logp: expected a float tensor of shape \(batch seq\), got \(2,\)"),
    ({"mask": torch.tensor([[1, 2, 0], [1, 0, 0]])}, "mask: expected bool or 0/1 values"),
    ({"group_ids": torch.tensor([0.0, 1.0])}, "group_ids: expected an integer tensor, got torch.float32"),
    ({"logp": torch.tensor([[-0.5, 0.5, 0.0], [-0.2, 0.0, 0.0]])}, "logp: log-probabilities must be <= 0"),
    ({"rewards": torch.tensor([1.0, math.nan])}, "rewards: expected finite values"),
    ({"extras": {"w": torch.tensor([[1.0, math.inf, 0.0], [1.0, 0.0, 0.0]])}}, r"extras\['w'\]: expected finite"),
])
def test_from_batch_refuses_bad_input_naming_the_field(changes, message):
    with pytest.raises(RlobjInputError, match=message):
        State.from_batch(**_fields(**changes))


def test_non_finite_values_in_padding_are_allowed():
    state = State.from_batch(**_fields(entropy=torch.tensor([[0.1, 0.2, math.nan], [0.3, math.inf, 0.0]]),
                                       extras={"w": torch.tensor([[1.0, 2.0, math.nan], [1.0, math.nan, 0.0]])}))
    assert torch.equal(state.entropy, torch.tensor([[0.1, 0.2, 0.0], [0.3, 0.0, 0.0]]))  # zeroed where padded
    assert torch.isnan(state.extras["w"][0, 2])  # extras are checked at valid tokens, not rewritten


def test_require_and_require_part_name_the_reader_and_the_fix():
    state = State.from_batch(**_fields()).update(running="clip_ratio")
    with pytest.raises(RlobjInputError, match="clip_ratio reads 'advantages', but the state has none"):
        state.require("advantages")
    with pytest.raises(RlobjInputError, match="my_term reads 'extras:weights', but the state has none"):
        state.require("extras:weights", by="my_term")
    assert state.update(extras={"weights": 1}).require("extras:weights") == 1
    with pytest.raises(RlobjInputError, match="clip_ratio modifies the loss part 'policy', but no term before it"):
        state.require_part("policy")
    assert State.from_batch(**_fields()).reader() == "a term"


def test_updates_are_functional_metrics_detached_and_term_state_keyed():
    state = State.from_batch(**_fields())
    x = torch.tensor(2.0, requires_grad=True)
    with_metrics = state.add_metrics(kl=x * 3, n=4)
    assert state.metrics == {} and not with_metrics.metrics["kl"].requires_grad
    assert with_metrics.metrics["n"].item() == 4.0
    mine = state.update(key="kl_penalty#2")
    assert mine.own_state("fresh") == "fresh"
    stored = mine.set_own_state({"ema": 0.5})
    assert stored.own_state(None) == {"ema": 0.5} and stored.term_state == {"kl_penalty#2": {"ema": 0.5}}
    assert stored.update(key="kl_penalty").own_state(None) is None
    assert stored.update(extras={"stats:kl_penalty#2:q": 3}).own_stats("q") == 3


def test_token_entropy_from_the_field_else_an_error_naming_both_sources():
    entropy = torch.tensor([[0.1, 0.2, 0.0], [0.3, 0.0, 0.0]])
    assert torch.equal(State.from_batch(**_fields(entropy=entropy)).token_entropy(), entropy)
    with pytest.raises(RlobjInputError, match="neither an 'entropy' tensor nor a 'vocab' view"):
        State.from_batch(**_fields()).token_entropy()


def test_normalizer_counts_valid_tokens_and_non_empty_sequences_over_micro_batches():
    masks = [MASK, torch.tensor([[False, False, False], [True, True, True]])]
    assert Normalizer.from_masks(masks) == Normalizer(tokens=6.0, seqs=3.0, ranks=1)
