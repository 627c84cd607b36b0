"""``DropAllTruncated``: a batch transform of a user's own (drop groups whose every response was cut)."""

import torch

from rlobj.train.stages import Transform


class DropAllTruncated(Transform):
    """Drop the groups in which every response hit ``max_new_tokens``; count them."""

    def __call__(self, ctx, batch):
        groups, truncated = batch.rollout.group_ids, batch.rollout.truncated
        dropped = [int(g) for g in groups.unique() if bool(truncated[groups == g].all())]
        keep = ~torch.isin(groups, torch.tensor(dropped, dtype=groups.dtype, device=groups.device))
        out = batch.select(keep.nonzero().squeeze(-1))
        out.metrics["drop_all_truncated/groups"] = float(len(dropped))
        return out
