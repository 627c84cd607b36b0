"""The objective algebra: state, terms, ``>>``, identity, chains, aggregation, ``Objective``."""

from rlobj.algebra.aggregation import (
    Aggregation,
    aggregate,
    constant_normalizer,
    length_weighted,
    seq_mean_token_mean,
    seq_mean_token_sum,
    token_mean,
)
from rlobj.algebra.contract import Fraction, NonNegative, OpenFraction, Positive, Range
from rlobj.algebra.objective import Objective, Output
from rlobj.algebra.state import LossPart, Normalizer, State
from rlobj.algebra.term import Chain, Term, as_terms, chain, identity

__all__ = [
    "Aggregation",
    "Chain",
    "Fraction",
    "LossPart",
    "NonNegative",
    "Normalizer",
    "Objective",
    "OpenFraction",
    "Output",
    "Positive",
    "Range",
    "State",
    "Term",
    "aggregate",
    "as_terms",
    "chain",
    "constant_normalizer",
    "identity",
    "length_weighted",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "token_mean",
]
