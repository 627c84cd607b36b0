r"""Padding-free packed forwards: the rows of a micro-batch as one sequence, no padding tokens.

A padded micro-batch of $B$ rows runs the model on $B \times (P + S)$ positions, padding included.
Packed, the real tokens of every row (prompt and response, where their masks are True) are
concatenated into one sequence of $T = \sum_b L_b$ tokens, with position ids that restart at 0 for
each row. The attention mask is left out: ``transformers`` (its ``masking_utils``, used by the
Qwen2 / Llama / Mistral / Gemma families) then detects the packed rows from the position ids and
builds a block-diagonal causal mask for the ``sdpa`` and ``eager`` attentions (the ``flash``
attentions use the same position ids as variable-length sequences), so no token attends across
rows. Same log-probs as the padded forward (tests: float64, Qwen2 and Llama, loss and gradients
through the trainer's update).

The packed forwards return the padded layout the rest of the trainer reads (``[batch, seq, ...]``
with zeros on padding), so objectives and vocab views are unchanged. Needs left-padded prompts
whose last position is a real token and right-padded responses without holes (every real
response token is predicted from a real token), as the samplers produce.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.logprobs import positions_from_mask

__all__ = ["Packed", "pack_rows", "packed_final_hidden_states", "packed_response_logits", "check_packing_support"]


@dataclass(frozen=True)
class Packed:
    """Rows packed into one sequence.

    Attributes:
        input_ids: ``[1, T]`` the real tokens of every row, row after row.
        position_ids: ``[1, T]`` positions restarting at 0 for each row.
        predict_index: ``[N]`` packed index of the position that predicts each real response
            token (row-major order of ``response_mask``).
        response_mask: ``[batch, seq]`` the rows' response mask (where the results go back).
        padded_tokens: positions a padded forward would run, $B \times (P + S)$.
    """

    input_ids: Tensor
    position_ids: Tensor
    predict_index: Tensor
    response_mask: Tensor
    padded_tokens: int

    @property
    def tokens(self) -> int:
        """Positions the packed forward runs ($T$)."""
        return int(self.input_ids.shape[1])

    def unpack(self, values: Tensor) -> Tensor:
        """``[N, ...]`` values at the predicting positions -> ``[batch, seq, ...]``, zeros on padding
        (differentiable)."""
        shape = tuple(self.response_mask.shape) + tuple(values.shape[1:])
        out = values.new_zeros(shape)
        return out.index_put((self.response_mask,), values)


def pack_rows(prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor, response_mask: Tensor) -> Packed:
    """Pack the real tokens of each row into one sequence (see the module docstring).

    Raises:
        RlobjInputError: a prompt whose last position is padding (not left-padded), or a response
            mask with a hole (a real token after a padded one).
    """
    prompt_mask, response_mask = prompt_mask.bool(), response_mask.bool()
    if prompt_ids.shape[1] == 0 or not bool(prompt_mask[:, -1].all()):
        raise RlobjInputError("update.packing: every prompt must be left-padded with a real last token "
                              "(prompt_mask[:, -1] all True)")
    if response_mask.shape[1] > 1 and bool((response_mask[:, 1:] & ~response_mask[:, :-1]).any()):
        raise RlobjInputError("update.packing: response masks must be right-padded without holes "
                              "(a real response token follows a padded one)")
    keep = torch.cat([prompt_mask, response_mask], dim=1)
    ids = torch.cat([prompt_ids, response_ids], dim=1)
    packed_index = (keep.flatten().long().cumsum(0) - 1).view(keep.shape)
    prompt_len, response_len = prompt_ids.shape[1], response_ids.shape[1]
    # joined position prompt_len - 1 + t predicts response token t
    predict = packed_index[:, prompt_len - 1:prompt_len - 1 + response_len][response_mask]
    return Packed(input_ids=ids[keep][None], position_ids=positions_from_mask(keep)[keep][None],
                  predict_index=predict, response_mask=response_mask, padded_tokens=int(keep.numel()))


def check_packing_support() -> None:
    """Raise when the installed ``transformers`` cannot keep packed rows apart (no packed-sequence
    detection from position ids in its attention masks)."""
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
    except ImportError as error:
        import transformers

        raise RlobjInputError(f"update.packing: transformers {transformers.__version__} does not detect packed "
                              f"rows from position ids (no masking_utils.find_packed_sequence_indices); "
                              f"upgrade transformers or set update.packing: false") from error


def _inputs(packed: Packed) -> dict:
    # no attention mask: the model derives the block-diagonal causal mask from the position ids
    return dict(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False)


def packed_final_hidden_states(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                               response_mask: Tensor) -> Tensor:
    """:func:`~rlobj.train.forward.final_hidden_states` from a packed forward: ``[batch, seq, hidden]``,
    zeros where ``response_mask`` is False."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if decoder is None or decoder is model:
        raise TypeError(f"packed_final_hidden_states: {type(model).__name__} exposes no decoder (get_decoder())")
    packed = pack_rows(prompt_ids, prompt_mask, response_ids, response_mask)
    hidden = decoder(**_inputs(packed)).last_hidden_state[0]
    return packed.unpack(hidden[packed.predict_index])


def packed_response_logits(model, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
                           response_mask: Tensor) -> Tensor:
    """:func:`~rlobj.rollout.logprobs.response_logits` from a packed forward: ``[batch, seq, vocab]``,
    zeros where ``response_mask`` is False (only the predicting positions' logits are computed
    when the model accepts a tensor ``logits_to_keep``)."""
    from rlobj.rollout.logprobs import _logits_to_keep_kwarg

    packed = pack_rows(prompt_ids, prompt_mask, response_ids, response_mask)
    keep_name = _logits_to_keep_kwarg(model)
    if keep_name is not None:
        logits = model(**_inputs(packed), **{keep_name: packed.predict_index}).logits[0]
    else:
        logits = model(**_inputs(packed)).logits[0, packed.predict_index]
    return packed.unpack(logits)
