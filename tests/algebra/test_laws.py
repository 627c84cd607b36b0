"""The laws of DESIGN.md section 3 as Hypothesis properties."""

import pickle

import pytest
import torch
from batches import batches, leaf, make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

import rlobj
from rlobj import (
    Chain,
    Normalizer,
    Objective,
    State,
    chain,
    clip_ratio,
    constant_normalizer,
    group_zscore,
    identity,
    k3_kl,
    length_weighted,
    seq_mean_token_mean,
    seq_mean_token_sum,
    token_mean,
)
from rlobj.algebra import aggregate
from rlobj.algebra.term import as_terms, term_keys

SETTINGS = settings(max_examples=40)

ADVANTAGES = [rlobj.group_zscore(), rlobj.group_mean_baseline(), rlobj.leave_one_out(),
              rlobj.group_baseline_whiten(), rlobj.length_weighted_baseline(), rlobj.gpg_scale()]
SURROGATES = [rlobj.clip_ratio(), rlobj.clip_ratio(eps_high=0.28, dual_clip=3.0), rlobj.reinforce(),
              rlobj.sequence_clip(), rlobj.sequence_clip(token_level=True), rlobj.geometric_clip(),
              rlobj.clipped_weight_pg(), rlobj.soft_gate(), rlobj.delta_clip()]
PENALTIES = [rlobj.k3_kl(0.1), rlobj.k1_kl(0.05, against="init"), rlobj.entropy_bonus(0.01),
             rlobj.k2_kl(0.2, straight_through=True)]
AGGREGATIONS = [token_mean(), seq_mean_token_mean(), seq_mean_token_sum(), constant_normalizer(16.0),
                length_weighted()]
POLICY_MODIFIERS = [rlobj.truncated_is(), rlobj.masked_is(), rlobj.truncated_mask(),
                    rlobj.off_policy_sequence_mask(threshold=0.1)]
PRESETS = [rlobj.grpo, rlobj.dr_grpo, rlobj.dapo, rlobj.gspo, rlobj.cispo, rlobj.sapo, rlobj.gmpo,
           rlobj.rloo, rlobj.reinforce_pp]


@st.composite
def objectives(draw, penalties=True):
    """A valid chain: advantage >> surrogate >> [modifiers] >> [penalties] >> aggregation."""
    terms = [draw(st.sampled_from(ADVANTAGES)), draw(st.sampled_from(SURROGATES))]
    terms += draw(st.lists(st.sampled_from(POLICY_MODIFIERS), max_size=2, unique_by=type))
    if penalties:
        terms += draw(st.lists(st.sampled_from(PENALTIES), max_size=2, unique_by=lambda t: repr(t)[:12]))
    terms.append(draw(st.sampled_from(AGGREGATIONS)))
    return terms


def run(term, fields):
    fields = leaf(fields)
    out = Objective(term)(**fields)
    (grad,) = torch.autograd.grad(out.loss, fields["logp"], allow_unused=False)
    return out, grad


def assert_same(left, right, atol=1e-6):
    (out_a, grad_a), (out_b, grad_b) = left, right
    torch.testing.assert_close(out_a.loss, out_b.loss, atol=atol, rtol=1e-5)
    torch.testing.assert_close(grad_a, grad_b, atol=atol, rtol=1e-5)


# ---------------------------------------------------------------------------------------- >>
@SETTINGS
@given(objectives(), st.data())
def test_associativity_any_bracketing_gives_the_same_chain_and_loss(terms, data):
    fields = data.draw(batches())
    split_a = data.draw(st.integers(1, len(terms) - 1))
    split_b = data.draw(st.integers(1, len(terms) - 1))
    left = chain(*terms[:split_a]) >> chain(*terms[split_a:])
    right = chain(*terms[:split_b]) >> chain(*terms[split_b:])
    folded_left = terms[0]
    for term in terms[1:]:
        folded_left = folded_left >> term
    folded_right = terms[-1]
    for term in reversed(terms[:-1]):
        folded_right = term >> folded_right
    assert left == right == folded_left == folded_right
    assert as_terms(left) == tuple(terms)
    assert_same(run(left, fields), run(right, fields))


@SETTINGS
@given(objectives(), batches())
def test_identity_is_neutral(terms, fields):
    objective = chain(*terms)
    assert identity() >> objective == objective == objective >> identity()
    assert identity() >> identity() == identity()
    assert_same(run(identity() >> objective, fields), run(objective, fields))


def test_single_term_composed_with_identity_is_the_term_itself():
    term = clip_ratio(eps_high=0.28)
    assert (identity() >> term) is term
    assert (term >> identity()) is term


@SETTINGS
@given(objectives(penalties=False), st.permutations(PENALTIES[:3]), batches())
def test_additive_penalties_commute(terms, order, fields):
    *body, aggregation = terms
    first = chain(*body, *PENALTIES[:3], aggregation)
    permuted = chain(*body, *order, aggregation)
    assert_same(run(first, fields), run(permuted, fields))
    # and the same when the aggregation is written first
    assert_same(run(chain(*body, aggregation, *order), fields), run(first, fields))


@SETTINGS
@given(objectives(), batches())
def test_a_chain_equals_its_terms_applied_by_hand(terms, fields):
    fields = leaf(fields)
    out = Objective(chain(*terms))(**fields)
    state = State.from_batch(**fields)
    keys = term_keys(terms)  # each term under its stable name, as the chain runs it
    for key, term in zip(keys, terms):  # batch stage first, then the rest, as documented
        if term.stage == "batch":
            state = term(state.update(key=key))
    for key, term in zip(keys, terms):
        if term.stage != "batch":
            state = term(state.update(key=key))
    by_hand, parts = aggregate(state)
    torch.testing.assert_close(out.loss, by_hand)
    assert set(parts) == set(out.state.parts)
    torch.testing.assert_close(
        torch.autograd.grad(out.loss, fields["logp"], retain_graph=True)[0],
        torch.autograd.grad(by_hand, fields["logp"])[0],
    )


# ---------------------------------------------------------------------------------- padding
@SETTINGS
@given(st.one_of(objectives(), st.sampled_from(PRESETS).map(lambda p: list(as_terms(p)))),
       batches(), st.integers(1, 5))
def test_padding_never_changes_loss_or_gradient(terms, fields, extra):
    objective = chain(*terms)
    width = fields["mask"].shape[1]

    def pad(value):
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[1] == width:
            # garbage in the padding: NaN for floats, an arbitrary id for integer extras (turn_ids)
            fill = False if value.dtype == torch.bool else (float("nan") if value.is_floating_point() else 7)
            return torch.cat([value, torch.full((value.shape[0], extra), fill, dtype=value.dtype)], 1)
        return value

    padded = {k: pad(v) for k, v in fields.items()}
    padded["extras"] = {k: pad(v) for k, v in fields["extras"].items()}
    out, grad = run(objective, fields)
    out_pad, grad_pad = run(objective, padded)
    torch.testing.assert_close(out.loss, out_pad.loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad, grad_pad[:, :width], atol=1e-6, rtol=1e-5)
    assert torch.all(grad_pad[:, width:] == 0)


# ----------------------------------------------------------------- micro-batches and ranks
def accumulate(objective, fields, sizes, ranks=1):
    """Prepare once, split into micro-batches (grouped into `ranks` ranks), sum gradients.

    Simulated data parallelism: each rank sums its micro-batch gradients, then the ranks'
    gradients are averaged (what DDP does); the normalizer is global with ranks=R.
    """
    fields = leaf(fields)
    obj = Objective(objective)
    prepared = obj.prepare(**fields)
    micro = obj.split(prepared, sizes)
    global_counts = Normalizer.from_masks([m.mask for m in micro], all_reduce=False)
    normalizer = Normalizer(global_counts.tokens, global_counts.seqs, ranks=ranks)
    per_rank = [torch.zeros_like(fields["logp"]) for _ in range(ranks)]
    total = 0.0
    for index, piece in enumerate(micro):
        out = obj.loss(piece, normalizer=normalizer)
        # the micro-batches share the prepared state's (sanitising) graph node: keep it
        (grad,) = torch.autograd.grad(out.loss, fields["logp"], retain_graph=True)
        per_rank[index % ranks] += grad
        total += float(out.loss.detach()) / ranks
    return total, sum(per_rank) / ranks


@st.composite
def splits(draw, batch):
    cuts = sorted(draw(st.lists(st.integers(1, batch - 1), max_size=3, unique=True))) if batch > 1 else []
    bounds = [0, *cuts, batch]
    return [b - a for a, b in zip(bounds, bounds[1:])]


@SETTINGS
@given(st.one_of(objectives(), st.sampled_from(PRESETS).map(lambda p: list(as_terms(p)))),
       st.data(), st.integers(1, 3))
def test_micro_batches_and_ranks_accumulate_to_the_whole_batch_gradient(terms, data, ranks):
    fields = data.draw(batches())
    sizes = data.draw(splits(int(fields["mask"].shape[0])))
    objective = chain(*terms)
    whole, grad_whole = run(objective, fields)
    total, grad_split = accumulate(objective, fields, sizes, ranks=ranks)
    torch.testing.assert_close(grad_split, grad_whole, atol=1e-6, rtol=1e-5)
    assert abs(total - float(whole.loss)) < 1e-5 + 1e-5 * abs(float(whole.loss))


def test_micro_batch_law_holds_for_every_aggregation_with_uneven_lengths():
    fields = make_batch([3, 3], [1, 7, 2, 5, 6, 3], seed=3)
    for aggregation in AGGREGATIONS:
        objective = group_zscore() >> clip_ratio() >> k3_kl(0.1) >> aggregation
        _, grad_whole = run(objective, fields)
        _, grad_split = accumulate(objective, fields, [1, 2, 3])
        torch.testing.assert_close(grad_split, grad_whole, atol=1e-7, rtol=1e-6)


def test_a_local_normalizer_breaks_the_micro_batch_law():
    """The law needs the global normalizer: local counts give a different gradient."""
    fields = leaf(make_batch([3, 3], [1, 7, 2, 5, 6, 3], seed=3))
    objective = Objective(group_zscore() >> clip_ratio() >> token_mean())
    prepared = objective.prepare(**fields)
    grads = torch.zeros_like(fields["logp"])
    for piece in objective.split(prepared, [2, 4]):
        out = objective.loss(piece)  # no normalizer: each micro-batch divides by its own count
        grads += torch.autograd.grad(out.loss, fields["logp"], retain_graph=True)[0]
    _, grad_whole = run(objective.chain, make_batch([3, 3], [1, 7, 2, 5, 6, 3], seed=3))
    assert not torch.allclose(grads, grad_whole, atol=1e-6)


# ------------------------------------------------------------------------- aggregation math
@SETTINGS
@given(batches())
def test_length_weighted_equals_seq_mean_token_sum(fields):
    base = group_zscore() >> clip_ratio()
    assert_same(run(base >> length_weighted(), fields), run(base >> seq_mean_token_sum(), fields))


@SETTINGS
@given(batches())
def test_token_mean_and_seq_mean_differ_by_length_weights(fields):
    """token_mean = sum_i (len_i / sum len) lbar_i; seq_mean_token_mean = sum_i lbar_i / B."""
    base = group_zscore() >> clip_ratio()
    state = Objective(base).prepare(**fields)
    state = Objective(base).loss(state).state
    part = state.parts["policy"]
    lengths = state.mask.sum(-1).float()
    means = torch.where(state.mask, part.values, 0).sum(-1) / lengths
    token = Objective(base >> token_mean())(**fields).loss
    seq = Objective(base >> seq_mean_token_mean())(**fields).loss
    torch.testing.assert_close(token, (lengths / lengths.sum() * means).sum())
    torch.testing.assert_close(seq, means.mean())


def test_constant_normalizer_hand_computed():
    # two sequences, per-token policy losses -A*rho with rho=1: A = +-0.7071 (z-score of 1, 0)
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = Objective(group_zscore() >> clip_ratio() >> constant_normalizer(10.0))(
        logp=logp, logp_old=logp, mask=mask, rewards=torch.tensor([1.0, 0.0]),
        group_ids=torch.tensor([0, 0]))
    a = 1 / (2**0.5 + 1e-6) * (2**0.5 / 2) * 2**0.5  # (1 - 0.5) / (std=0.7071 + 1e-6)
    expected = (-a * 3 + a * 1) / (2 * 10.0)  # sum over tokens / (N_seq * L)
    assert abs(float(out.loss) - expected) < 1e-6


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("term", PRESETS + ADVANTAGES + SURROGATES + PENALTIES + AGGREGATIONS)
def test_terms_pickle_print_and_compare_by_value(term):
    copy = pickle.loads(pickle.dumps(term))
    assert copy == term and hash(repr(copy)) == hash(repr(term))
    assert repr(copy) == repr(term)
    assert "object at 0x" not in repr(term)


def test_terms_are_immutable():
    term = clip_ratio()
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        term.eps_high = 0.5  # type: ignore[misc]


def test_stateful_term_returns_new_state_without_mutating():
    fields = make_batch([2, 2], [3, 3, 2, 4])
    objective = Objective(group_zscore() >> clip_ratio() >> rlobj.adaptive_entropy(target=5.0, step=0.01))
    previous = {}
    first = objective(**fields, term_state=previous)
    assert previous == {}
    (key,) = first.term_state
    assert first.term_state[key] == pytest.approx(0.01)
    second = objective(**fields, term_state=first.term_state)
    assert second.term_state[key] == pytest.approx(0.02)
    assert first.term_state[key] == pytest.approx(0.01)


def test_chain_replace_swaps_a_term():
    edited = rlobj.grpo.replace(group_zscore, rlobj.group_mean_baseline())
    assert as_terms(edited)[0] == rlobj.group_mean_baseline()
    assert isinstance(edited, Chain) and len(edited) == 3


def test_constant_normalizer_verl_form_differs_by_the_number_of_sequences():
    fields = make_batch([2, 2], [3, 2, 3, 1], seed=2)
    base = group_zscore() >> clip_ratio()
    oat = Objective(base >> constant_normalizer(8.0))(**fields).loss
    verl = Objective(base >> constant_normalizer(8.0, per_sequence=False))(**fields).loss
    torch.testing.assert_close(verl, oat * 4)


def test_scalar_parts_average_over_micro_batches_by_their_share_of_sequences():
    from dataclasses import dataclass

    from rlobj import LossPart, Term

    @dataclass(frozen=True)
    class batch_mean_logp(Term):  # a regulariser of a batch statistic: one number per call
        reads = ("logp", "mask")
        writes = ("part:stat",)

        def __call__(self, state):
            value = torch.where(state.mask, state.logp, 0).sum() / state.mask.sum()
            return state.add_part("stat", LossPart(value, state.mask, "scalar"))

    fields = leaf(make_batch([2, 2], [3, 2, 3, 1], seed=4))
    objective = Objective(batch_mean_logp())
    prepared = objective.prepare(**fields)
    micro = objective.split(prepared, [1, 3])
    normalizer = Normalizer.from_masks([m.mask for m in micro], all_reduce=False)
    values = [objective.loss(m, normalizer=normalizer).loss for m in micro]
    plain = [objective.loss(m).loss for m in micro]
    # weighted by the share of sequences: 1/4 and 3/4 of the two micro-batch values
    torch.testing.assert_close(values[0] + values[1], 0.25 * plain[0] + 0.75 * plain[1])
    with pytest.raises(rlobj.RlobjInputError, match="a 'scalar' part needs a 0-dim tensor"):
        LossPart(torch.zeros(2), torch.ones(2, dtype=torch.bool), "scalar")
