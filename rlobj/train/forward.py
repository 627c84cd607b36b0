r"""The trainer's forward pass over rollout rows: per-token log-probs and (optionally) entropy.

Same conventions as :func:`rlobj.rollout.sequence_logprobs` (left-padded prompts, right-padded
responses, position ids from the attention mask: the pitfall of ENVIRONMENT.md), plus the
per-token entropy $H_t = -\sum_v \pi(v)\log\pi(v)$ of the temperature-scaled distribution, taken
from the same logits (a metric; it carries gradient only when the objective reads ``entropy``).
"""

import torch
from torch import Tensor

from rlobj.rollout.logprobs import joined_inputs, response_logits

__all__ = ["token_logprobs", "chunked_logprobs", "supports_chunked", "final_hidden_states", "vocab_view",
           "view_logprobs"]


def token_logprobs(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                   response_mask: Tensor, temperature: float = 1.0,
                   with_entropy: bool = False, packed: bool = False,
                   model_inputs: dict | None = None) -> tuple[Tensor, Tensor | None]:
    r"""$\log\pi_\theta(y_t \mid x, y_{<t})$ at temperature $T$ for every response token, and $H_t$.

    ``packed``: run the model on the rows packed into one sequence without padding
    (:mod:`rlobj.train.packing`); same values. ``model_inputs``: the rows' pixel inputs of a
    vision-language model (:meth:`rlobj.rollout.vision.VisionInputs.model_inputs`).

    Returns:
        ``(logp, entropy)``: float32 ``[batch, seq]`` tensors (float64 for a float64 model), 0 where ``response_mask`` is False;
        ``entropy`` is None unless ``with_entropy``.
    """
    _check_packing(packed, model_inputs)
    if packed:
        from rlobj.train.packing import packed_response_logits

        logits = packed_response_logits(model, prompt_ids, prompt_mask, response_ids, response_mask)
    else:
        logits = response_logits(model, prompt_ids, prompt_mask, response_ids, response_mask, model_inputs)
    logits = logits.to(_work_dtype(logits.dtype)) / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    mask = response_mask.bool()
    logp = torch.where(mask, logp, torch.zeros((), dtype=logp.dtype))
    entropy = None
    if with_entropy:
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        entropy = torch.where(mask, entropy, torch.zeros((), dtype=entropy.dtype))
    return logp, entropy


def supports_chunked(model) -> bool:
    """Whether ``model`` exposes a decoder and an output projection (what the chunked path needs)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return decoder is not None and decoder is not model and getattr(head, "weight", None) is not None


def chunked_logprobs(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                     response_mask: Tensor, temperature: float = 1.0, with_entropy: bool = False,
                     chunk_size: int | None = None, packed: bool = False,
                     model_inputs: dict | None = None) -> tuple[Tensor, Tensor | None]:
    r""":func:`token_logprobs` without ``[tokens, vocab]`` logits: from the final hidden states and
    the output projection, chunk by chunk (:class:`~rlobj.ops.vocab.VocabView`; recomputed in
    backward). Same values, dtypes and zeros on padding as :func:`token_logprobs`.
    """
    view = vocab_view(model, prompt_ids, prompt_mask, response_ids, response_mask, temperature=temperature,
                      chunk_size=chunk_size, packed=packed, model_inputs=model_inputs)
    return view_logprobs(view, response_ids, response_mask, with_entropy=with_entropy)


def final_hidden_states(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                        response_mask: Tensor, model_inputs: dict | None = None) -> Tensor:
    r"""The decoder's final hidden states $h_t$ at the positions that predict the response tokens.

    Runs the model's decoder (``model.get_decoder()``) without its output layer, so no
    ``[tokens, vocab]`` logits are built; returns ``[batch, seq, hidden]`` (position $t$ predicts
    ``response_ids[:, t]``). Same inputs and positions as :func:`token_logprobs`. With
    ``model_inputs`` (pixel inputs) it runs the vision-language model's base (``model.model``:
    vision tower, projector and decoder) instead of the bare decoder.
    """
    from rlobj.rollout.vision import own_positions

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if model_inputs:
        decoder = getattr(model, "model", None)
    if decoder is None or decoder is model:
        raise TypeError(f"final_hidden_states: {type(model).__name__} exposes no decoder (get_decoder())")
    output = decoder(**joined_inputs(prompt_ids, prompt_mask, response_ids, response_mask, model_inputs,
                                     positions=not (model_inputs and own_positions(model))))
    return output.last_hidden_state[:, -(response_ids.shape[1] + 1):-1]


def vocab_view(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
               response_mask: Tensor, temperature: float = 1.0, chunk_size: int | None = None,
               packed: bool = False, model_inputs: dict | None = None):
    r"""A :class:`~rlobj.ops.vocab.VocabView` of the policy's next-token distributions over the response.

    $\pi(\cdot \mid s_t) = \mathrm{softmax}(\mathrm{softcap}(h_t W^\top + b) / T)$ from
    :func:`final_hidden_states` (``packed``: from one packed forward without padding,
    :func:`rlobj.train.packing.packed_final_hidden_states`) and the output layer's weight $W$
    (and bias, and the config's ``final_logit_softcapping`` if any). Gradients follow the caller's
    grad mode: with grad, the view back-propagates into the decoder and $W$ chunk by chunk (the
    logits never exist whole).
    """
    from rlobj.ops.vocab import VocabView

    _check_packing(packed, model_inputs)
    if packed:
        from rlobj.train.packing import packed_final_hidden_states

        hidden = packed_final_hidden_states(model, prompt_ids, prompt_mask, response_ids, response_mask)
    else:
        hidden = final_hidden_states(model, prompt_ids, prompt_mask, response_ids, response_mask, model_inputs)
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    return VocabView.from_hidden(hidden, head.weight, getattr(head, "bias", None), temperature=temperature,
                                 softcap=softcap, chunk_size=chunk_size)


def view_logprobs(view, response_ids: Tensor, response_mask: Tensor,
                  with_entropy: bool = True) -> tuple[Tensor, Tensor | None]:
    """``(logp, entropy)`` of the response tokens from a vocab view, in one pass; 0 on padding
    (``entropy`` is None unless ``with_entropy``)."""
    from rlobj.ops.vocab import Entropy, LogProb

    mask = response_mask.bool()
    queries = (LogProb(torch.where(mask, response_ids, 0)),) + ((Entropy(),) if with_entropy else ())
    out = view.evaluate(*queries, mask=mask)
    zero = torch.zeros((), dtype=out[0].dtype)
    dtype = _work_dtype(out[0].dtype)
    logp = torch.where(mask, out[0], zero).to(dtype)
    return logp, (torch.where(mask, out[1], zero).to(dtype) if with_entropy else None)


def _check_packing(packed: bool, model_inputs: dict | None) -> None:
    if packed and model_inputs:
        from rlobj.ops.errors import RlobjInputError

        raise RlobjInputError("update.packing: packed forwards take text rows only; this batch carries images "
                              "(set update.packing: false)")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for low-precision models (bf16, fp16, fp32), float64 for float64 models (law checks)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
