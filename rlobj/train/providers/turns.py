"""The multi-turn sampler's per-token records, as inputs of the turn terms."""

from typing import ClassVar

from rlobj.ops.errors import RlobjInputError
from rlobj.train.providers.base import Provider, register_provider

__all__ = ["TurnFields"]


@register_provider
class TurnFields(Provider):
    """``extras:turn_ids``, ``extras:turn_rewards`` and ``extras:observation_mask``: recorded by
    :class:`~rlobj.train.multiturn.MultiTurnSampler` in the batch (which then supplies them
    directly); this provider only runs when they are missing, and says which sampler writes them."""

    provides: ClassVar[tuple[str, ...]] = ("extras:turn_ids", "extras:turn_rewards", "extras:observation_mask")

    def batch(self, ctx, batch, inputs):
        missing = sorted(s for s in self.needed if s.removeprefix("extras:") not in batch.extras)
        raise RlobjInputError(f"{', '.join(missing)}: recorded by the multi-turn sampler (sampler: {{multi_turn: "
                              "{environment: ...}}); this batch comes from a sampler that does not record turns")
