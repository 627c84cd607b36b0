r"""Providers of per-batch facts that reference recipes read: each response's accuracy (DAPO
filters its groups on it) and SIREN's entropy anchor from the first rollout batch.
"""

from typing import ClassVar

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.distributed import world
from rlobj.train.providers.base import Provider, register_provider
from rlobj.train.providers.scores import scorer_field

__all__ = ["Accuracy", "SirenAnchor"]


@register_provider
class Accuracy(Provider):
    r"""``extras:accuracy`` (float ``" batch"``): whether each response is correct, for
    :class:`~rlobj.terms.masks.groups.drop_zero_variance_groups` with ``on="accuracy"`` (DAPO's
    dynamic sampling tests the accuracy, verl ``filter_groups.metric: acc``, not the
    length-penalised reward).

    The scorer's ``field`` (default ``"accuracy"``) when every row's score has it; otherwise the
    scorer's reward itself (``batch.rewards``: what the verifier returned, before any term of
    the objective shaped it; 0/1 for rlobj's verifiers).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:accuracy",)

    def __init__(self, field: str = "accuracy"):
        self.field = field

    def batch(self, ctx, batch, inputs):
        given = scorer_field(batch, self.field)
        values = given if given is not None else batch.rewards  # raises when nothing scored the batch
        return {"extras:accuracy": values.float().to(batch.rollout.response_ids.device)}


@register_provider
class SirenAnchor(Provider):
    r"""``extras:siren_anchor`` (0-dim): SIREN's anchor $H_\text{anc}$, the mean over the responses
    of the **first rollout batch** (all rows, all data-parallel ranks) of each response's mean
    top-p entropy over its peak tokens, under the policy that sampled it (the initial policy),
    with the consuming :class:`~rlobj.terms.regularizers.selective_entropy.siren` term's ``p``, ``quantile`` and
    ``top_k`` (reference: ``ray_trainer.py`` computes it once at ``global_steps == 1`` over the
    whole batch). Computed on the first batch only (chunked, no grad); later batches get the
    same value, and the term keeps the anchor it stored at its first call (term state).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:siren_anchor",)

    def __init__(self):
        self._term = None
        self._anchor = None

    def setup(self, terms):
        found = {t for t in terms if "extras:siren_anchor" in t.slots_read() and hasattr(t, "row_means")}
        settings = {(t.p, t.quantile, t.top_k) for t in found}
        if len(settings) > 1:
            raise RlobjInputError(f"objective: siren terms disagree on (p, quantile, top_k): {sorted(settings)}; "
                                  "one anchor is computed")
        if not found:
            raise RlobjInputError("SirenAnchor: no siren term reads extras['siren_anchor']")
        self._term = found.pop()

    def batch(self, ctx, batch, inputs):
        if self._anchor is None:
            rollout = batch.rollout
            total = torch.zeros((), dtype=torch.float64)
            rows = torch.zeros((), dtype=torch.float64)
            action = batch.action_mask()  # the tokens siren's loss counts (no multi-turn observations)
            with torch.no_grad():
                for part in ctx.models.chunks(len(rollout)):
                    mask = action[part].bool()
                    per_row, _ = self._term.row_means(ctx.models.view(rollout, part), mask)
                    total += per_row.double().sum().cpu()
                    rows += mask.any(-1).sum().double().cpu()
            if world()[1] > 1:
                device = rollout.response_ids.device
                both = torch.stack([total, rows]).to(device)
                torch.distributed.all_reduce(both)
                total, rows = both.cpu()
            self._anchor = total / rows.clamp(min=1)
        return {"extras:siren_anchor": self._anchor.float().to(batch.rollout.response_ids.device)}
