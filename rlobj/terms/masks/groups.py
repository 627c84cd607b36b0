"""Group masks: drop whole groups from the loss by writing ``mask``.

:class:`drop_zero_variance_groups` is the in-objective half of DAPO's dynamic sampling
(arXiv 2503.14476); :func:`zero_variance_groups` is the test it uses, shared with the batch
function :func:`rlobj.rollout.filters.dynamic_sampling`.
"""

import torch
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import group_all_equal
from rlobj.terms._common import _rewards, require_groups

__all__ = ["zero_variance_groups", "drop_zero_variance_groups"]


def zero_variance_groups(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """Per sequence: True when every reward of its group is equal (the group gives no signal).

    DAPO's dynamic sampling (arXiv 2503.14476, Eq. 11) discards such groups and samples more.
    """
    return group_all_equal(rewards, group_ids)


class drop_zero_variance_groups(Term,
                                stage="batch",
                                reads=("rewards", "group_ids", "mask"),
                                writes=("mask",),
                                may_read=("extras:dropped",)):
    r"""Remove groups whose rewards (or accuracies) are all equal from the loss (and from its
    normaliser).

    The in-objective half of DAPO's dynamic sampling (arXiv 2503.14476, Eq. 11: keep groups
    with $0 < |\{o_i \text{ correct}\}| < G$). Nothing is resampled here: in the trainer the
    ``dynamic_sampling`` transform (``transforms: [{dynamic_sampling: {max_rounds: 3}}]``,
    :mod:`rlobj.train.transforms`) drops flat groups and resamples the step's own prompts (DAPO
    draws new prompts instead). The rows' masks become all False, so they count neither
    as tokens nor as sequences; ``extras["dropped"]`` records them. Reports the dropped
    fraction as ``groups/zero_variance_frac``.

    Args:
        on: ``"rewards"`` (default): test the rewards as this term sees them (after any reward
            shaping before it); ``"accuracy"``: test ``extras["accuracy"]`` (``" batch"``), the
            correctness of each response, which DAPO filters on (verl ``filter_groups.metric:
            acc``): a group of correct answers stays flat even when a length penalty made its
            rewards differ. In the trainer the ``Accuracy`` provider gives the scorer's
            ``accuracy`` field, or else the scorer's reward before any term shaped it.
    """

    on: str = "rewards"

    def __post_init__(self):
        if self.on not in ("rewards", "accuracy"):
            raise RlobjInputError(f"drop_zero_variance_groups.on: expected 'rewards' or 'accuracy', got {self.on!r}")

    def slots_read(self) -> frozenset[str]:
        if self.on == "accuracy":
            return frozenset({"extras:accuracy", "group_ids", "mask"})
        return frozenset(self.reads)

    def __call__(self, state: State) -> State:
        group_ids = require_groups(state)
        if self.on == "accuracy":
            values = state.require("extras:accuracy")
            if values.shape != group_ids.shape:
                raise RlobjInputError(f"extras['accuracy']: expected shape {tuple(group_ids.shape)} (one value per "
                                      f"response), got {tuple(values.shape)}")
        else:
            values = _rewards(state, "drop_zero_variance_groups")
        flat = zero_variance_groups(values, group_ids)
        mask = state.mask & ~flat[:, None]
        dropped = flat | state.extras.get("dropped", torch.zeros_like(flat))
        return state.update(mask=mask, extras={**state.extras, "dropped": dropped}).add_metrics(
            **{"groups/zero_variance_frac": flat.float().mean()})
