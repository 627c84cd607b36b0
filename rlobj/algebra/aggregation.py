r"""The one aggregation step: per-token loss parts to one scalar.

Every loss part $p$ (values $\ell_{i,t}$, mask $m_{i,t}$) is reduced with the same mode and
the results are summed. With the response mask $M$, lengths $|y_i| = \sum_t M_{i,t}$ and the
global counts of a :class:`~rlobj.algebra.state.Normalizer` ($N_\text{tok}$ valid tokens,
$N_\text{seq}$ non-empty sequences, over all micro-batches and ranks; local counts when no
normalizer is given):

| mode | formula |
|---|---|
| `token_mean` | $\sum_{i,t} m\ell / N_\text{tok}$ |
| `seq_mean_token_mean` | $\frac{1}{N_\text{seq}}\sum_i \frac{1}{\lvert y_i\rvert}\sum_t m\ell$ |
| `seq_mean_token_sum` | $\frac{1}{N_\text{seq}}\sum_i \sum_t m\ell$ |
| `constant_normalizer(L)` | $\frac{1}{N_\text{seq}\,L}\sum_{i,t} m\ell$ |
| `length_weighted` | $\frac{1}{N_\text{seq}}\sum_i \lvert y_i\rvert \cdot \frac{1}{\lvert y_i\rvert}\sum_t m\ell$ |

Because each mode is a sum over sequences divided by a global count, the loss of a batch
split into micro-batches (and ranks) and accumulated equals the loss of the whole batch.
A part with ``normalize="own"`` uses the counts of its own mask: locally (which breaks the law:
the reference behaviour of a few terms, kept as an option) or, when the part carries
``counts`` (a :class:`~rlobj.algebra.state.Normalizer` of its mask over the whole mini-batch,
from the term's mini-batch statistics), globally. With ``counts``, ``token_mean`` divides by
the global count of the part's tokens, the ``seq_mean_*`` modes by the global count of rows in
which the part has a token (each row's own length stays per row, so it is local anyway). Each
part is multiplied by ``Normalizer.ranks`` (the data-parallel world size) because
data-parallel training averages gradients over ranks. A part that carries its own
``aggregation`` (``LossPart.aggregation``) is reduced with that mode instead of the chain's,
with the same counts (e.g. ``entropy_bonus(aggregation="token_mean")`` under a
``constant_normalizer`` chain, as RL-PLUS's reference does).
"""

from torch import Tensor

from rlobj.algebra.state import LossPart, Normalizer, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import masked_sum, sequence_lengths

__all__ = [
    "Aggregation",
    "token_mean",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "constant_normalizer",
    "length_weighted",
    "aggregate",
]


class Aggregation(Term, abstract=True, writes=("aggregation",)):
    """Base of the aggregation modes: a term that records itself as the chain's reducer."""

    def __call__(self, state: State) -> State:
        return state.update(aggregation=self)

    def reduce(self, part: LossPart, response_mask: Tensor, counts: Normalizer) -> Tensor:
        per_sequence = masked_sum(part.values, part.mask, dim=-1)
        lengths = sequence_lengths(part.mask if part.normalize == "own" else response_mask)
        return self.combine(per_sequence, lengths.to(per_sequence.dtype), counts)

    def combine(self, per_sequence: Tensor, lengths: Tensor, counts: Normalizer) -> Tensor:
        raise TypeError(f"{type(self).__name__} does not define combine")  # pragma: no cover


def _safe(count: float) -> float:
    return max(float(count), 1.0)


class token_mean(Aggregation):
    r"""$\sum_{i,t} m_{i,t}\ell_{i,t} / N_\text{tok}$: every token weighs the same.

    DAPO's "token-level loss" (Yu et al., arXiv 2503.14476, Eq. 8); verl ``token-mean``,
    TRL ``loss_type="dapo"``. TRL's ``loss_type="bnpo"`` normalises by the tokens of the local
    micro-batch only: that is ``token_mean`` run without a global
    :class:`~rlobj.algebra.state.Normalizer` (``Objective.loss(micro, normalizer=None)``),
    which breaks the micro-batch law on purpose.
    """

    def combine(self, per_sequence, lengths, counts):
        return per_sequence.sum() / _safe(counts.tokens)


class seq_mean_token_mean(Aggregation):
    r"""$\frac{1}{N_\text{seq}}\sum_i \frac{1}{|y_i|}\sum_t m_{i,t}\ell_{i,t}$ (original GRPO).

    Shao et al., DeepSeekMath, arXiv 2402.03300, Eq. 3; verl ``seq-mean-token-mean``,
    TRL ``loss_type="grpo"``. Long responses get a smaller per-token weight (length bias).
    """

    def combine(self, per_sequence, lengths, counts):
        return (per_sequence / lengths.clamp(min=1)).sum() / _safe(counts.seqs)


class seq_mean_token_sum(Aggregation):
    r"""$\frac{1}{N_\text{seq}}\sum_i \sum_t m_{i,t}\ell_{i,t}$ (verl ``seq-mean-token-sum``)."""

    def combine(self, per_sequence, lengths, counts):
        return per_sequence.sum() / _safe(counts.seqs)


class constant_normalizer(Aggregation):
    r"""$\frac{1}{N_\text{seq} L}\sum_{i,t} m_{i,t}\ell_{i,t}$ with a constant $L$ (Dr. GRPO).

    Liu et al., "Understanding R1-Zero-Like Training", arXiv 2503.20783, Sec. 3.1: dividing by
    a constant (the generation budget, ``max_tokens``) instead of $|y_i|$ removes the length
    bias. Matches oat's Dr. GRPO and TRL ``loss_type="dr_grpo"`` (which divides by
    ``batch * max_completion_length``).

    Note:
        verl 0.9's ``seq-mean-token-sum-norm`` divides by $N_\text{seq} L$ too (``L`` =
        ``loss_scale_factor``, else the padded response length): ``per_sequence=True``
        (checked against verl 0.9.1's ``agg_loss``). ``per_sequence=False`` divides by $L$
        only; with ``max_tokens=1`` it is verl's ``token-sum``.

    Args:
        max_tokens: the constant $L$, normally the maximum response length.
        per_sequence: divide by $N_\text{seq} L$ (oat, TRL, verl; default) or by $L$ only.
    """

    max_tokens: float = 1024.0
    per_sequence: bool = True

    def __post_init__(self):
        if not self.max_tokens > 0:
            raise RlobjInputError(f"constant_normalizer.max_tokens: expected > 0, got {self.max_tokens}")

    def combine(self, per_sequence, lengths, counts):
        sequences = _safe(counts.seqs) if self.per_sequence else 1.0
        return per_sequence.sum() / (sequences * float(self.max_tokens))


class length_weighted(Aggregation):
    r"""LUSPO: each sequence's mean token loss weighted by its length.

    $\frac{1}{N_\text{seq}}\sum_i |y_i| \cdot \bar\ell_i$ with
    $\bar\ell_i = \frac{1}{|y_i|}\sum_t m_{i,t}\ell_{i,t}$ (Liu et al., "Length-Unbiased
    Sequence Policy Optimization", arXiv 2602.05261: GSPO's sequence loss scaled by the
    sequence length). For per-token losses this equals :class:`seq_mean_token_sum` exactly
    (a tested identity); it is kept as its own name so recipes read like the paper.
    """

    def combine(self, per_sequence, lengths, counts):
        means = per_sequence / lengths.clamp(min=1)
        return (lengths * means).sum() / _safe(counts.seqs)


def aggregate(state: State) -> tuple[Tensor, dict[str, Tensor]]:
    """Reduce every loss part of ``state`` with its aggregation; returns (loss, per-part losses).

    The chain's aggregation term (``token_mean()`` when the chain has none; a part's own
    ``aggregation`` when it carries one) and the state's normalizer (local counts when none was
    given) decide the denominators.
    """
    mode = state.aggregation if state.aggregation is not None else token_mean()
    if not state.parts:
        raise RlobjInputError(
            "the objective produced no loss part: add a surrogate (e.g. clip_ratio()) or a penalty"
        )
    global_counts = state.normalizer or Normalizer.from_masks([state.mask], all_reduce=False)
    dropped = state.extras.get("dropped")
    everything_dropped = dropped is not None and bool((dropped | state.mask.any(-1)).all())
    if global_counts.tokens <= 0 and not everything_dropped \
            and all(p.normalize != "own" for p in state.parts.values()):
        raise RlobjInputError(
            "mask: the batch has no valid token (every row of the mask is False), so the loss "
            "would be an average over nothing"
        )
    total = None
    per_part = {}
    for name, part in state.parts.items():
        if part.normalize == "scalar":
            share = 1.0
            if state.normalizer is not None:
                local = float(state.mask.any(-1).sum())
                share = local * state.normalizer.ranks / _safe(state.normalizer.seqs)
            per_part[name] = part.values * share
            total = per_part[name] if total is None else total + per_part[name]
            continue
        counts = global_counts
        if part.normalize == "own":
            counts = part.counts if part.counts is not None else \
                Normalizer(tokens=float(part.mask.sum()), seqs=float(part.mask.any(-1).sum()))
        reducer = part.aggregation if part.aggregation is not None else mode
        if not isinstance(reducer, Aggregation):
            raise RlobjInputError(f"loss part {name!r}: aggregation must be an Aggregation "
                                  f"(e.g. token_mean()), got {reducer!r}")
        value = reducer.reduce(part, state.mask, counts) * counts.ranks
        per_part[name] = value
        total = value if total is None else total + value
    return total, per_part
