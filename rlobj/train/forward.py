r"""The trainer's forward pass over rollout rows: per-token log-probs and (optionally) entropy.

Same conventions as :func:`rlobj.rollout.sequence_logprobs` (left-padded prompts, right-padded
responses, position ids from the attention mask: the pitfall of ENVIRONMENT.md), plus the
per-token entropy $H_t = -\sum_v \pi(v)\log\pi(v)$ of the temperature-scaled distribution, taken
from the same logits (a metric; it carries gradient only when the objective reads ``entropy``).
"""

import torch
from torch import Tensor

from rlobj.rollout.logprobs import _logits_to_keep_kwarg, positions_from_mask

__all__ = ["token_logprobs"]


def token_logprobs(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                   response_mask: Tensor, temperature: float = 1.0,
                   with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
    r"""$\log\pi_\theta(y_t \mid x, y_{<t})$ at temperature $T$ for every response token, and $H_t$.

    Returns:
        ``(logp, entropy)``: float32 ``[batch, seq]`` tensors, 0 where ``response_mask`` is False;
        ``entropy`` is None unless ``with_entropy``.
    """
    response_length = response_ids.shape[1]
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention = torch.cat([prompt_mask, response_mask], dim=1).bool()
    kwargs = {}
    keep = _logits_to_keep_kwarg(model)
    if keep is not None:
        kwargs[keep] = response_length + 1
    output = model(input_ids=input_ids, attention_mask=attention.long(),
                   position_ids=positions_from_mask(attention), use_cache=False, **kwargs)
    logits = output.logits[:, -(response_length + 1):-1].float() / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    mask = response_mask.bool()
    logp = torch.where(mask, logp, torch.zeros((), dtype=logp.dtype))
    entropy = None
    if with_entropy:
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        entropy = torch.where(mask, entropy, torch.zeros((), dtype=entropy.dtype))
    return logp, entropy
