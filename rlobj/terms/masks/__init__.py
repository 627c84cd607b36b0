r"""Masks: token weights and masks on the policy loss, and group masks.

A mask term either reads and rewrites the ``"policy"`` part an earlier surrogate wrote
(narrowing its mask or multiplying it by a weight), so it comes after the surrogate, or writes
``mask`` in the batch stage to drop whole groups.

| module | holds |
|---|---|
| :mod:`~rlobj.terms.masks.token_selection` | truncated completions, top-entropy (forking) tokens, off-policy sequences, mastered positives, VPPO pivotal tokens |
| :mod:`~rlobj.terms.masks.importance_weights` | truncated / masked IS and geometric rejection for the engine/trainer mismatch |
| :mod:`~rlobj.terms.masks.groups` | zero-variance groups (DAPO dynamic sampling in the objective) |
"""

from rlobj.terms.masks.groups import (
    drop_zero_variance_groups,
    zero_variance_groups,
)
from rlobj.terms.masks.importance_weights import (
    geometric_is_mask,
    masked_is,
    truncated_is,
)
from rlobj.terms.masks.token_selection import (
    mastered_positive_mask,
    off_policy_sequence_mask,
    pivotal_token_mask,
    top_entropy_mask,
    top_fraction_mask,
    truncated_mask,
)

__all__ = [
    # token_selection
    "mastered_positive_mask",
    "off_policy_sequence_mask",
    "pivotal_token_mask",
    "top_entropy_mask",
    "top_fraction_mask",
    "truncated_mask",
    # importance_weights
    "geometric_is_mask",
    "masked_is",
    "truncated_is",
    # groups
    "drop_zero_variance_groups",
    "zero_variance_groups",
]
