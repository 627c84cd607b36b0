"""``CharLengths``: the provider of ``extras:char_lengths`` (characters of each decoded response)."""

import torch

from rlobj.train.providers import Provider


class CharLengths(Provider):
    """Number of characters of each decoded response (EOS excluded), once per rollout batch."""

    provides = ("extras:char_lengths",)

    def batch(self, ctx, batch, inputs):
        texts = ctx.decode(batch.rollout)
        return {"extras:char_lengths": torch.tensor([len(t) for t in texts], dtype=torch.float32,
                                                    device=batch.rollout.response_ids.device)}
