r"""The default provider of ``extras:node_values`` for batches that did not come from a tree search.

:class:`~rlobj.train.search_samplers.MCTSSampler` attaches the node values of its paths to the
batch (``batch.extras["node_values"]``), which wins over any provider. For a batch sampled
otherwise, :class:`TreeValues` treats each response as a tree of one node: every token takes
the value $v = s\,(r - b)$ of its reward $r$ (``reward_scale`` $s$, ``reward_baseline`` $b$,
the search's defaults), so :class:`~rlobj.terms.advantages.tree.tree_value_advantage` on a plain
group is a group z-score of $v$ (population std) on the leaf step and a $\tanh$-squashed one on
earlier steps (``extras:step_ends`` from :class:`~rlobj.train.providers.steps.ReasoningSteps`).
"""

from __future__ import annotations

from typing import ClassVar

from rlobj.ops.errors import RlobjInputError
from rlobj.train.providers.base import Provider, register_provider

__all__ = ["TreeValues"]


@register_provider
class TreeValues(Provider):
    r"""``extras:node_values`` ``[batch, seq]``: $s\,(r_i - b)$ on every response token of row $i$.

    Args:
        reward_scale: $s > 0$. Default 2.0 (rewards in $\{0, 1\}$ become $\pm 1$).
        reward_baseline: $b$. Default 0.5.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:node_values",)

    def __init__(self, reward_scale: float = 2.0, reward_baseline: float = 0.5):
        if not reward_scale > 0:
            raise RlobjInputError(f"TreeValues.reward_scale: expected a number > 0, got {reward_scale!r}")
        self.reward_scale, self.reward_baseline = float(reward_scale), float(reward_baseline)

    def batch(self, ctx, batch, inputs):
        mask = batch.rollout.response_mask
        rewards = inputs["rewards"].to(mask.device).float()
        return {"extras:node_values": self.reward_scale * (rewards - self.reward_baseline)[:, None] * mask}
