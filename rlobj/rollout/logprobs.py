r"""The trainer's log-probs of sampled responses, computed exactly as the engines see them.

Pitfall this module exists for (ENVIRONMENT.md): with left-padded prompts, a forward pass without
``position_ids`` numbers the padding as positions 0, 1, ..., so every real token gets a shifted
rotary position and the trainer's log-probs differ from the sampler's (training then collapses).
:func:`sequence_logprobs` derives positions from the attention mask, as ``generate`` does.
"""

import inspect

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.typecheck import typechecked

__all__ = ["sequence_logprobs", "positions_from_mask", "next_token_logits"]


@typechecked
def positions_from_mask(attention_mask: Bool[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
    r"""Position ids that count only real tokens: $p_t = \max(0, \sum_{s \le t} m_s - 1)$.

    Example:
        >>> positions_from_mask(torch.tensor([[False, False, True, True, True]])).tolist()
        [[0, 0, 0, 1, 2]]
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _logits_to_keep_kwarg(model) -> str | None:
    parameters = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in parameters:
            return name
    return None


@typechecked
def sequence_logprobs(
    model,
    prompt_ids: Int[Tensor, "batch prompt"],
    prompt_mask: Bool[Tensor, "batch prompt"],
    response_ids: Int[Tensor, "batch seq"],
    response_mask: Bool[Tensor, "batch seq"],
    temperature: float | int = 1.0,
) -> Float[Tensor, "batch seq"]:
    r"""Log-prob of each response token under ``model`` at temperature $T$ (differentiable).

    $$ \log \pi_\theta(y_t \mid x, y_{<t}) = z_{t, y_t} / T - \log \sum_v \exp(z_{t, v} / T) $$
    where $z_t$ are the logits after the (left-padded) prompt $x$ and the response prefix
    $y_{<t}$. Position ids come from the concatenated attention mask
    (:func:`positions_from_mask`), so padding does not shift positions; this equals an unpadded
    per-sample forward and the engines' ``logp_rollout`` at ``top_p=1, top_k=0``. Only the
    response positions' logits are materialised (``logits_to_keep``); they are cast to float32
    before the softmax.

    Args:
        model: a ``transformers`` causal LM (called with ``input_ids``, ``attention_mask``,
            ``position_ids``).
        prompt_ids: left-padded prompts (``RolloutBatch.prompt_ids``).
        prompt_mask: True on real prompt tokens.
        response_ids: right-padded responses.
        response_mask: True on real response tokens.
        temperature: $T > 0$, the engine's sampling temperature. Default 1.0.

    Returns:
        float32 ``[batch, seq]`` log-probs, 0 where ``response_mask`` is False. Gradients flow to
        the model's parameters unless called under ``torch.no_grad()``.
    """
    if not temperature > 0:
        raise ValueError(f"sequence_logprobs: temperature must be > 0, got {temperature!r}")
    if prompt_ids.shape != prompt_mask.shape:
        raise ValueError(
            f"sequence_logprobs: prompt_mask shape {tuple(prompt_mask.shape)} must equal "
            f"prompt_ids shape {tuple(prompt_ids.shape)}")
    if response_ids.shape != response_mask.shape:
        raise ValueError(
            f"sequence_logprobs: response_mask shape {tuple(response_mask.shape)} must equal "
            f"response_ids shape {tuple(response_ids.shape)}")
    if prompt_ids.shape[0] != response_ids.shape[0]:
        raise ValueError(
            f"sequence_logprobs: prompt batch {prompt_ids.shape[0]} must equal response batch "
            f"{response_ids.shape[0]}")
    if prompt_ids.shape[1] == 0 or not bool(prompt_mask.any(-1).all()):
        raise ValueError("sequence_logprobs: every prompt needs at least one real token")
    logits = response_logits(model, prompt_ids, prompt_mask, response_ids, response_mask)
    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp_all.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    return logp.masked_fill(~response_mask.bool(), 0.0)


def joined_inputs(prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                  response_mask: Tensor, model_inputs: dict | None = None, positions: bool = True) -> dict:
    """Model inputs for prompt + response: ids, attention mask and positions from the mask.

    Positions come from the attention mask (as ``generate`` does), so left padding never shifts
    them: the trainer's log-probs then match the sampler's. ``model_inputs`` (a multimodal
    batch's pixel inputs, :meth:`~rlobj.rollout.vision.VisionInputs.model_inputs`) are added;
    ``positions=False`` leaves the positions to the model (Qwen2-VL's multimodal rotary ones).
    """
    attention = torch.cat([prompt_mask, response_mask], dim=1).bool()
    out = dict(input_ids=torch.cat([prompt_ids, response_ids], dim=1), attention_mask=attention.long(),
               use_cache=False, **(model_inputs or {}))
    if positions:
        out["position_ids"] = positions_from_mask(attention)
    return out


def response_logits(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                    response_mask: Tensor, model_inputs: dict | None = None) -> Tensor:
    """Logits at the positions that predict the response tokens, ``[batch, seq, vocab]``.

    Only those positions are materialised when the model accepts ``logits_to_keep``.
    ``model_inputs``: pixel inputs of a vision-language model (see :func:`joined_inputs`).
    """
    from rlobj.rollout.vision import own_positions

    response_length = response_ids.shape[1]
    kwargs = {}
    keep_name = _logits_to_keep_kwarg(model)
    if keep_name is not None:
        kwargs[keep_name] = response_length + 1
    inputs = joined_inputs(prompt_ids, prompt_mask, response_ids, response_mask, model_inputs,
                           positions=not (model_inputs and own_positions(model)))
    output = model(**inputs, **kwargs)
    # logits[:, i] predicts token i + 1: keep the positions that predict the response tokens.
    return output.logits[:, -(response_length + 1):-1]


def next_token_logits(model, contexts, pad_token_id: int = 0, vocab_size: int | None = None) -> Tensor:
    r"""float32 logits ``[batch, vocab]`` of the token after each context, from one left-padded forward.

    The contexts (token id lists or 1-D tensors) are left padded
    (:func:`~rlobj.rollout.engine.left_pad_prompts`, ids checked against ``vocab_size`` when given),
    positions come from the mask (:func:`positions_from_mask`), the model runs in eval mode without
    gradient (its training flag is restored afterwards). The result lies on the model's device.

    Example:
        >>> from rlobj.rollout.tiny import build_tiny_qwen2
        >>> next_token_logits(build_tiny_qwen2(vocab_size=8), [[1, 2, 3], [4]]).shape
        torch.Size([2, 8])
    """
    from rlobj.rollout.engine import left_pad_prompts

    ids, mask = left_pad_prompts(contexts, pad_token_id, vocab_size)
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask.long(), position_ids=positions_from_mask(mask),
                        use_cache=False)
    finally:
        model.train(was_training)
    return out.logits[:, -1].float()
