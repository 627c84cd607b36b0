r"""The default engine: batched sampling from a Hugging Face causal LM, CPU or GPU.

It runs its own decoding loop over the model's KV cache instead of ``model.generate`` so that the
reported ``logp_rollout`` is exactly the log-prob under the distribution each token was drawn from
(:func:`~rlobj.rollout.engine.sampling_logprobs`: temperature, top-k, top-p, renormalised), with
positions derived from the attention mask as the trainer's
:func:`~rlobj.rollout.logprobs.sequence_logprobs` derives them.
"""

import inspect
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from rlobj.rollout.engine import (
    RolloutBatch,
    SamplingConfig,
    left_pad_prompts,
    sampling_logprobs,
    validate_generate_args,
)
from rlobj.rollout.logprobs import positions_from_mask
from rlobj.rollout.vision import VisionInputs, own_positions

__all__ = ["HFEngine"]


def _as_id_list(value) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(token) for token in value]


class HFEngine:
    r"""Sample ``n`` responses per prompt from a ``transformers`` causal LM.

    The engine holds a reference to ``model`` (usually the very module the trainer optimises, so
    its weights are always current). Sampling draws from a ``torch.Generator`` seeded with
    ``SamplingConfig.seed``: the same model, prompts and config give the same batch. The model is
    put in eval mode while generating and restored afterwards; no gradient is recorded.

    Args:
        model: a ``transformers`` causal LM (``Qwen2ForCausalLM`` etc.), on any device.
        eos_token_id: id or ids that end a response. Default: the model config's
            ``eos_token_id``. With none, every response runs to ``max_new_tokens``.
        pad_token_id: id written into padding. Default: the config's pad id, else the first EOS
            id, else 0. Padding is always masked, so its value only matters for readability.
        max_batch_size: largest number of sequences decoded at once (memory bound); the batch is
            split into chunks of this size, sampled in order from one generator. Default: all.
        suppress_token_ids: ids never sampled (their logits set to $-\infty$ before sampling, so
            ``logp_rollout`` is the log-prob under the renormalised rest). A vision-language
            model's image placeholder tokens: sampled into a response they would ask the next
            forward for an image that is not there.

    ``supports_sleep`` is False: the engine owns no memory besides the model it shares with the
    trainer (its KV cache exists only inside ``generate``), so ``sleep`` / ``wake`` do nothing.
    """

    supports_sleep = False

    def __init__(self, model, eos_token_id: int | Sequence[int] | None = None,
                 pad_token_id: int | None = None, max_batch_size: int | None = None,
                 suppress_token_ids: Sequence[int] = ()) -> None:
        config = model.config
        if not hasattr(config, "vocab_size") and hasattr(config, "get_text_config"):  # vision-language
            config = config.get_text_config()
        self.model = model
        self.vocab_size = int(config.vocab_size)
        eos = _as_id_list(eos_token_id if eos_token_id is not None else config.eos_token_id)
        for token in eos:
            if not 0 <= token < self.vocab_size:
                raise ValueError(
                    f"HFEngine: eos_token_id {token} is outside [0, vocab_size={self.vocab_size})")
        self.eos_token_ids = tuple(eos)
        if pad_token_id is None:
            pad_token_id = config.pad_token_id if config.pad_token_id is not None else (
                eos[0] if eos else 0)
        if not 0 <= pad_token_id < self.vocab_size:
            raise ValueError(
                f"HFEngine: pad_token_id {pad_token_id} is outside [0, vocab_size="
                f"{self.vocab_size})")
        self.pad_token_id = int(pad_token_id)
        if max_batch_size is not None and (isinstance(max_batch_size, bool)
                                           or not isinstance(max_batch_size, int)
                                           or max_batch_size < 1):
            raise ValueError(
                f"HFEngine: max_batch_size must be an int >= 1 or None, got {max_batch_size!r}")
        self.max_batch_size = max_batch_size
        self.suppress_token_ids = tuple(int(t) for t in suppress_token_ids)
        for token in self.suppress_token_ids:
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"HFEngine: suppress_token_ids holds {token}, outside [0, vocab_size={self.vocab_size})")
        forward_parameters = inspect.signature(model.forward).parameters
        # transformers >= 5.20 names the KV cache argument `cache`, older releases `past_key_values`.
        self._cache_kwarg = "cache" if "cache" in forward_parameters else "past_key_values"

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, prompts: Sequence[Sequence[int] | Tensor], n: int,
                 sampling: SamplingConfig, vision: VisionInputs | None = None) -> RolloutBatch:
        r"""Sample ``n`` responses for each prompt.

        Args:
            prompts: non-empty list of non-empty token id sequences (lists or 1-D tensors).
            n: responses per prompt, >= 1. Response ``b`` answers prompt ``b // n``.
            sampling: temperature, top-p, top-k, ``max_new_tokens``, seed, greedy.
            vision: for a vision-language model, the prompts' pixel inputs (one row per prompt,
                :func:`~rlobj.rollout.vision.encode_records`; the prompts' image placeholder
                tokens already expanded). The returned batch keeps them per row (``vision``).

        Returns:
            A :class:`~rlobj.rollout.engine.RolloutBatch` with ``len(prompts) * n`` rows, on the
            model's device.
        """
        validate_generate_args(prompts, n, sampling)
        if vision is not None and len(vision) != len(prompts):
            raise ValueError(f"generate: vision has {len(vision)} rows for {len(prompts)} prompts")
        prompt_ids, prompt_mask = left_pad_prompts(prompts, self.pad_token_id, self.vocab_size)
        device = self._device()
        prompt_ids = prompt_ids.repeat_interleave(n, dim=0).to(device)
        prompt_mask = prompt_mask.repeat_interleave(n, dim=0).to(device)
        group_ids = torch.arange(len(prompts), device=device).repeat_interleave(n)
        generator = None
        if sampling.seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(sampling.seed)
        rows_vision = None if vision is None else vision.to(device).repeat_interleave(n)
        response_ids, response_mask, logp_rollout, finished = self.decode_rows(
            prompt_ids, prompt_mask, sampling, generator, vision=rows_vision)
        truncated = ~finished
        return RolloutBatch(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=response_ids,
            response_mask=response_mask,
            logp_rollout=logp_rollout,
            group_ids=group_ids,
            truncated=truncated,
            finish_reasons=tuple("length" if flag else "stop" for flag in truncated.tolist()),
            vision=rows_vision,
        )

    def decode_rows(self, prompt_ids: Tensor, prompt_mask: Tensor, sampling: SamplingConfig,
                    generator: torch.Generator | None = None, offsets: Tensor | None = None,
                    vision: VisionInputs | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""Decode one response per row of already left-padded prompts (the loop behind ``generate``).

        For strategies that manage rows themselves (segment rollouts, tree rollouts, broad
        sampling): ``generator`` is used as given (its state advances), and ``offsets[b]`` is the
        response position of row ``b``'s first new token (a continued response's prefix length;
        default 0), used by ``sampling.temperature_schedule``; ``vision`` the rows' pixel inputs
        (one row per prompt row). Rows are decoded in chunks of
        ``max_batch_size``, in eval mode, without gradient.

        Returns:
            ``(response_ids, response_mask, logp_rollout, finished)`` on the model's device;
            ``finished[b]`` is True when row ``b`` produced an EOS token.
        """
        total = prompt_ids.shape[0]
        device = prompt_ids.device
        if offsets is None:
            offsets = torch.zeros(total, dtype=torch.long, device=device)
        elif tuple(offsets.shape) != (total,):
            raise ValueError(
                f"HFEngine.decode_rows: offsets must have shape ({total},), got "
                f"{tuple(offsets.shape)}")
        chunk = self.max_batch_size or total
        pieces = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for start in range(0, total, chunk):
                    rows = slice(start, start + chunk)
                    pixels = {} if vision is None else vision.select(rows).model_inputs(self._dtype())
                    pieces.append(self._decode(prompt_ids[rows], prompt_mask[rows], sampling,
                                               generator, offsets[rows].to(device), pixels))
        finally:
            self.model.train(was_training)
        width = max(piece[0].shape[1] for piece in pieces)
        response_ids = torch.full((total, width), self.pad_token_id, dtype=torch.long,
                                  device=device)
        response_mask = torch.zeros((total, width), dtype=torch.bool, device=device)
        logp_rollout = torch.zeros((total, width), dtype=torch.float32, device=device)
        finished_rows = []
        row = 0
        for ids, mask, logp, finished in pieces:
            rows = ids.shape[0]
            response_ids[row:row + rows, :ids.shape[1]] = ids
            response_mask[row:row + rows, :ids.shape[1]] = mask
            logp_rollout[row:row + rows, :ids.shape[1]] = logp
            finished_rows.append(finished)
            row += rows
        return response_ids, response_mask, logp_rollout, torch.cat(finished_rows)

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _decode(self, prompt_ids: Tensor, prompt_mask: Tensor, sampling: SamplingConfig,
                generator: torch.Generator | None, offsets: Tensor, pixels: dict | None = None):
        """One KV-cached decoding loop over a chunk; returns ids, mask, logp, finished."""
        rows = prompt_ids.shape[0]
        device = prompt_ids.device
        eos = torch.tensor(self.eos_token_ids, dtype=torch.long, device=device)
        attention_mask = prompt_mask.long()
        # a model with its own (multimodal rotary) positions derives them from the images and
        # the attention mask at the prefill and continues them from the cache
        positions = not (pixels and own_positions(self.model))
        prefill = {"position_ids": positions_from_mask(prompt_mask)} if positions else {}
        output = self.model(input_ids=prompt_ids, attention_mask=attention_mask, use_cache=True,
                            **prefill, **(pixels or {}))
        next_position = prompt_mask.long().sum(-1)
        finished = torch.zeros(rows, dtype=torch.bool, device=device)
        tokens, masks, logps = [], [], []
        schedule = sampling.temperature_schedule
        for step in range(sampling.max_new_tokens):
            logits = output.logits[:, -1]
            if self.suppress_token_ids:
                logits = logits.float().index_fill(-1, torch.tensor(self.suppress_token_ids, device=device),
                                                   float("-inf"))
            if schedule is not None:
                tau = schedule.temperatures(offsets + step).to(device=device, dtype=torch.float32)
                logits = logits.float() / tau.unsqueeze(-1)
            if sampling.greedy:
                distribution = torch.log_softmax(logits.float() / sampling.temperature, dim=-1)
                token = logits.argmax(-1)
            else:
                distribution = sampling_logprobs(logits, sampling.temperature, sampling.top_k,
                                                 sampling.top_p)
                token = torch.multinomial(distribution.exp(), 1, generator=generator).squeeze(-1)
            logp = distribution.gather(-1, token.unsqueeze(-1)).squeeze(-1)
            alive = ~finished
            tokens.append(torch.where(alive, token, self.pad_token_id))
            logps.append(torch.where(alive, logp, 0.0))
            masks.append(alive)
            finished = finished | (alive & torch.isin(token, eos))
            if bool(finished.all()) or step == sampling.max_new_tokens - 1:
                break
            attention_mask = torch.cat(
                [attention_mask, torch.ones((rows, 1), dtype=torch.long, device=device)], dim=1)
            cache = output.cache if hasattr(output, "cache") else output.past_key_values
            step_positions = {"position_ids": next_position.unsqueeze(-1)} if positions else {}
            output = self.model(input_ids=tokens[-1].unsqueeze(-1), attention_mask=attention_mask,
                                use_cache=True, **step_positions, **{self._cache_kwarg: cache})
            next_position = next_position + 1
        return (torch.stack(tokens, dim=1), torch.stack(masks, dim=1),
                torch.stack(logps, dim=1), finished)

    def update_weights(self, named_params: Iterable[tuple[str, Tensor]]) -> None:
        r"""Copy parameters (Hugging Face names, e.g. ``model.layers.0.mlp.up_proj.weight``) in.

        A tensor that already *is* the engine's parameter storage (the engine shares the
        trainer's model) is skipped. Unknown names and shape mismatches raise ``KeyError`` /
        ``ValueError`` naming the parameter; nothing is copied silently into the wrong place.
        """
        own = dict(self.model.named_parameters(remove_duplicate=False))
        own.update(dict(self.model.named_buffers()))
        with torch.no_grad():
            for name, tensor in named_params:
                if name not in own:
                    raise KeyError(f"HFEngine.update_weights: unknown parameter name {name!r}")
                target = own[name]
                if tuple(target.shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"HFEngine.update_weights: {name} must have shape {tuple(target.shape)}, "
                        f"got {tuple(tensor.shape)}")
                if target.data_ptr() == tensor.data_ptr():
                    continue
                target.copy_(tensor.detach().to(device=target.device, dtype=target.dtype))

    def sleep(self) -> None:
        """No-op: the engine shares the trainer's model and keeps no KV cache between calls."""

    def wake(self) -> None:
        """No-op; see :meth:`sleep`."""
