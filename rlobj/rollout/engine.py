r"""The engine interface: sampling settings, the rollout batch, and the distribution actually sampled.

An engine turns prompts (token ids) into ``n`` sampled responses per prompt and returns a
:class:`RolloutBatch`. Every engine (``HFEngine``, ``VLLMEngine``) honours the same contract:

* prompts are left padded (``prompt_ids``, ``prompt_mask``), responses right padded
  (``response_ids``, ``response_mask`` True on real response tokens, the EOS token included);
* ``logp_rollout[b, t]`` is the log-probability of the sampled token under the distribution the
  token was actually drawn from: logits divided by the temperature, then top-k, then top-p
  (nucleus) filtering, renormalised over the kept tokens (:func:`sampling_logprobs`);
* ``group_ids[b]`` is the index of the prompt that response ``b`` answers; the ``n`` responses of
  one prompt are contiguous;
* ``truncated[b]`` is True when the response hit ``max_new_tokens`` without an EOS token.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.typecheck import typechecked
from rlobj.rollout.schedules import TemperatureSchedule, check_schedule

__all__ = [
    "SamplingConfig",
    "RolloutBatch",
    "Engine",
    "sampling_logprobs",
    "left_pad_prompts",
    "validate_generate_args",
]


@dataclass(frozen=True)
class SamplingConfig:
    r"""How an engine samples responses.

    The sampled distribution at each step is
    $$ \pi_{\text{sample}}(v) = \frac{\exp(z_v / T)\,[v \in K]}{\sum_{u \in K} \exp(z_u / T)} $$
    where $z$ are the model's logits, $T$ = ``temperature`` and $K$ is the set kept by top-k
    (the ``top_k`` largest logits) and then top-p (the smallest prefix of the remaining tokens,
    sorted by probability, whose mass reaches ``top_p``). Engines report
    $\log \pi_{\text{sample}}$ of each sampled token.

    Args:
        max_new_tokens: largest number of response tokens (EOS included). Must be >= 1.
        temperature: softmax temperature $T > 0$. Default 1.0. With ``greedy=True`` it only scales
            the reported log-probs.
        top_p: nucleus mass in (0, 1]; 1.0 keeps every token. Default 1.0.
        top_k: keep the ``top_k`` most likely tokens; 0 keeps every token. Default 0.
        seed: seed of the engine's sampler; ``None`` draws from the global RNG. Default None.
        greedy: take the arg-max token instead of sampling. The "sampled distribution" is then a
            point mass, so engines report $\log \mathrm{softmax}(z / T)$ of the chosen token
            (what ``sequence_logprobs`` computes) instead of 0. Default False.
        temperature_schedule: a per-position temperature multiplier $\tau_t$
            (:class:`~rlobj.rollout.schedules.TemperatureSchedule`, e.g. ``EADSchedule()``): the
            logits of response position $t$ are divided by $\tau_t$ before ``temperature``,
            top-k and top-p, and the reported log-probs are those of that distribution. Default
            None (no schedule: $\tau_t = 1$).
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    greedy: bool = False
    temperature_schedule: TemperatureSchedule | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise ValueError(
                f"SamplingConfig.max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not math.isfinite(self.temperature) \
                or self.temperature <= 0:
            raise ValueError(
                "SamplingConfig.temperature must be a finite number > 0 (use greedy=True for "
                f"arg-max decoding), got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingConfig.top_p must lie in (0, 1], got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(
                f"SamplingConfig.top_k must be an int >= 0 (0 = off), got {self.top_k!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"SamplingConfig.seed must be an int or None, got {self.seed!r}")
        check_schedule(self.temperature_schedule)
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))


@dataclass(frozen=True)
class RolloutBatch:
    r"""What an engine returns: ``batch = len(prompts) * n`` sampled responses.

    Fields (``prompt`` and ``seq`` are the padded prompt and response lengths):

    - ``prompt_ids`` ``[batch, prompt]`` int64: prompts, **left** padded with the pad id.
    - ``prompt_mask`` ``[batch, prompt]`` bool: True on real prompt tokens.
    - ``response_ids`` ``[batch, seq]`` int64: sampled tokens, **right** padded with the pad id.
    - ``response_mask`` ``[batch, seq]`` bool: True on real response tokens, the EOS included.
    - ``logp_rollout`` ``[batch, seq]`` float32: log-prob of each sampled token under the
      distribution it was drawn from (temperature, top-k, top-p applied); 0 where the mask is False.
      This is the ``logp_old`` of the first optimizer step when the engine and trainer agree.
    - ``group_ids`` ``[batch]`` int64: index of the prompt each response answers.
    - ``truncated`` ``[batch]`` bool: the response reached ``max_new_tokens`` without EOS.
    - ``finish_reasons``: per response ``"stop"`` (ended with EOS) or ``"length"`` (truncated).
    - ``vision``: for multimodal prompts, the pixel inputs of each row
      (:class:`~rlobj.rollout.vision.VisionInputs`), which every forward over the rows passes
      again; None for text.
    """

    prompt_ids: Int[Tensor, "batch prompt"]
    prompt_mask: Bool[Tensor, "batch prompt"]
    response_ids: Int[Tensor, "batch seq"]
    response_mask: Bool[Tensor, "batch seq"]
    logp_rollout: Float[Tensor, "batch seq"]
    group_ids: Int[Tensor, " batch"]
    truncated: Bool[Tensor, " batch"]
    finish_reasons: tuple[str, ...]
    vision: Any = None

    def __post_init__(self) -> None:
        batch = self.prompt_ids.shape[0]
        expected = {
            "prompt_ids": (batch, self.prompt_ids.shape[1]),
            "prompt_mask": (batch, self.prompt_ids.shape[1]),
            "response_ids": (batch, self.response_ids.shape[1]),
            "response_mask": (batch, self.response_ids.shape[1]),
            "logp_rollout": (batch, self.response_ids.shape[1]),
            "group_ids": (batch,),
            "truncated": (batch,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"RolloutBatch.{name} must have shape {shape}, got {got}")
        for name in ("prompt_mask", "response_mask", "truncated"):
            if getattr(self, name).dtype != torch.bool:
                raise ValueError(
                    f"RolloutBatch.{name} must be bool, got {getattr(self, name).dtype}")
        if len(self.finish_reasons) != batch:
            raise ValueError(
                f"RolloutBatch.finish_reasons must have {batch} entries, got "
                f"{len(self.finish_reasons)}")
        if self.vision is not None and len(self.vision) != batch:
            raise ValueError(f"RolloutBatch.vision must have {batch} rows, got {len(self.vision)}")

    def __len__(self) -> int:
        return self.prompt_ids.shape[0]

    @property
    def response_lengths(self) -> Int[Tensor, " batch"]:
        """Number of real response tokens per sequence (EOS included)."""
        return self.response_mask.sum(-1)

    def to(self, device: torch.device | str) -> "RolloutBatch":
        """A copy with every tensor moved to ``device``."""
        values = {}
        for field in fields(self):
            value = getattr(self, field.name)
            values[field.name] = value.to(device) if isinstance(value, Tensor) or field.name == "vision" \
                and value is not None else value
        return RolloutBatch(**values)


@runtime_checkable
class Engine(Protocol):
    r"""What the trainer needs from a generation engine.

    ``generate`` samples ``n`` responses per prompt; ``update_weights`` loads the trainer's new
    parameters (Hugging Face names) after an optimizer step; ``sleep`` / ``wake`` free and restore
    the engine's memory between rollouts where the backend supports it (``supports_sleep`` says
    whether they do anything; when False they are documented no-ops).
    """

    supports_sleep: bool

    def generate(self, prompts: Sequence[Sequence[int] | Tensor], n: int,
                 sampling: SamplingConfig) -> RolloutBatch: ...

    def update_weights(self, named_params: Iterable[tuple[str, Tensor]]) -> None: ...

    def sleep(self) -> None: ...

    def wake(self) -> None: ...


@typechecked
def sampling_logprobs(
    logits: Float[Tensor, "batch vocab"],
    temperature: float | int = 1.0,
    top_k: int = 0,
    top_p: float | int = 1.0,
) -> Float[Tensor, "batch vocab"]:
    r"""Log-probabilities of the distribution actually sampled: temperature, top-k, then top-p.

    $$ \log \pi_{\text{sample}}(v) = z_v / T - \log \sum_{u \in K} \exp(z_u / T), \quad v \in K $$
    and $-\infty$ outside $K$. $K$ keeps the ``top_k`` largest logits (all if 0), then, among
    those, the tokens whose probability-sorted cumulative mass *before* them is below ``top_p``
    (so the smallest prefix reaching ``top_p``; the most likely token is always kept). This is the
    order used by Hugging Face's and vLLM's samplers. Ties at the top-k boundary keep every tied
    token.

    Args:
        logits: next-token logits, any float dtype (computed in float32).
        temperature: $T > 0$.
        top_k: 0 = off.
        top_p: in (0, 1]; 1.0 = off.

    Returns:
        float32 log-probs, $-\infty$ on filtered tokens; each row's ``exp`` sums to 1.

    Example:
        >>> z = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
        >>> sampling_logprobs(z, top_k=2).exp().round(decimals=4)
        tensor([[0.7311, 0.2689, 0.0000, 0.0000]])
    """
    if not temperature > 0:
        raise ValueError(f"sampling_logprobs: temperature must be > 0, got {temperature!r}")
    if top_k < 0:
        raise ValueError(f"sampling_logprobs: top_k must be >= 0, got {top_k!r}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"sampling_logprobs: top_p must lie in (0, 1], got {top_p!r}")
    scaled = logits.float() / temperature
    if 0 < top_k < scaled.shape[-1]:
        kth_largest = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth_largest, float("-inf"))
    if top_p < 1.0:
        probs = torch.softmax(scaled, dim=-1)
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    return torch.log_softmax(scaled, dim=-1)


def _check_prompt_list(prompts, prefix: str) -> None:
    if isinstance(prompts, Tensor) or isinstance(prompts, (str, bytes)):
        raise TypeError(f"{prefix}prompts must be a list of token id sequences (lists or 1-D tensors), got "
                        f"{type(prompts).__name__}")
    if len(prompts) == 0:
        raise ValueError(f"{prefix}prompts must contain at least one prompt, got an empty list")


def left_pad_prompts(
    prompts: Sequence[Sequence[int] | Tensor], pad_token_id: int, vocab_size: int | None = None,
) -> tuple[Int[Tensor, "batch prompt"], Bool[Tensor, "batch prompt"]]:
    r"""Stack prompts of token ids into a left-padded ``[batch, prompt]`` tensor and its mask.

    Args:
        prompts: non-empty list of non-empty token id sequences (lists or 1-D int tensors).
        pad_token_id: id written in the padding.
        vocab_size: when given, every id must lie in ``[0, vocab_size)``.

    Returns:
        ``(prompt_ids, prompt_mask)``; ``prompt_mask`` is True on real tokens.

    Example:
        >>> ids, mask = left_pad_prompts([[5, 6, 7], [8]], pad_token_id=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6, 7], [0, 0, 8]], [[True, True, True], [False, False, True]])
    """
    _check_prompt_list(prompts, "")
    rows = []
    for index, prompt in enumerate(prompts):
        row = prompt.detach().to("cpu") if isinstance(prompt, Tensor) else torch.tensor(
            list(prompt), dtype=torch.long)
        if row.ndim != 1:
            raise ValueError(f"prompts[{index}] must be 1-D token ids, got shape {tuple(row.shape)}")
        if row.numel() == 0:
            raise ValueError(f"prompts[{index}] is empty; every prompt needs at least one token")
        if row.is_floating_point() or row.dtype == torch.bool:
            raise ValueError(f"prompts[{index}] must hold integer token ids, got dtype {row.dtype}")
        row = row.long()
        if int(row.min()) < 0 or (vocab_size is not None and int(row.max()) >= vocab_size):
            raise ValueError(
                f"prompts[{index}] has token ids outside [0, {vocab_size}): min {int(row.min())}, "
                f"max {int(row.max())}")
        rows.append(row)
    width = max(row.numel() for row in rows)
    prompt_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for index, row in enumerate(rows):
        prompt_ids[index, width - row.numel():] = row
        prompt_mask[index, width - row.numel():] = True
    return prompt_ids, prompt_mask


def right_pad_responses(responses: Sequence[Sequence[int]], pad_token_id: int) -> tuple[Tensor, Tensor]:
    r"""Stack responses (token id lists) into a right-padded ``[batch, width]`` tensor and its mask
    (True on real tokens); ``width`` is the longest response (at least 1).

    Example:
        >>> ids, mask = right_pad_responses([[5, 6], [7]], pad_token_id=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6], [7, 0]], [[True, True], [True, False]])
    """
    width = max([1] + [len(response) for response in responses])
    ids = torch.full((len(responses), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(responses), width), dtype=torch.bool)
    for row, response in enumerate(responses):
        ids[row, :len(response)] = torch.as_tensor(list(response), dtype=torch.long)
        mask[row, :len(response)] = True
    return ids, mask


def validate_generate_args(prompts: Sequence, n: int, sampling: SamplingConfig) -> None:
    """Check the arguments every engine's ``generate`` shares; raise naming the bad one."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"generate: n (responses per prompt) must be an int >= 1, got {n!r}")
    if not isinstance(sampling, SamplingConfig):
        raise TypeError(
            f"generate: sampling must be a SamplingConfig, got {type(sampling).__name__}")
    _check_prompt_list(prompts, "generate: ")
