r"""The grouped settings of :class:`~rlobj.train.RLModule`, one dataclass per concern.

In YAML each group is a mapping under ``model:``::

    model:
      objective: grpo
      policy: {tiny_model: {hidden_size: 128, layers: 2, heads: 2, seed: 0}}
      rollout: {group_size: 8, max_new_tokens: 5, temperature: 1.0}
      update: {ppo_epochs: 1, micro_batch_size: 16, grad_clip: 1.0}
      optimizer:
        class_path: torch.optim.AdamW
        init_args: {lr: 3.0e-4}
      warmup: {steps: 600, lr: 1.0e-3}
      evaluation: {samples: 8, k: [1, 8]}

Every group validates itself when it is built (before any model weight loads) and names the key
that is wrong: ``rollout.group_size: expected an int >= 1, got 0``. :data:`MOVED_KEYS` maps the
flat keys of rlobj 0.1 to their place here; the CLI names the new place when an old config uses one.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.tokenizer import ARITHMETIC_CHARS

__all__ = ["DTYPES", "EvalConfig", "MOVED_KEYS", "PolicyConfig", "RolloutConfig", "UpdateConfig",
           "WarmupConfig", "WarmupSchedule", "as_config", "default_optimizer"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}  # float64: the law checks


def _positive_int(group: str, name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RlobjInputError(f"{group}.{name}: expected an int >= 1{' or null' if allow_none else ''}, "
                              f"got {value!r}")


def _number(group: str, name: str, value, low: float, high: float = float("inf"),
            allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RlobjInputError(f"{group}.{name}: expected a number in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class PolicyConfig:
    """The policy network and its tokenizer.

    Args:
        model_path: a local Hugging Face model directory; None builds the tiny Qwen2 of
            :func:`rlobj.rollout.build_tiny_qwen2` from ``tiny_model`` and the character tokenizer.
        tiny_model: keyword arguments of ``build_tiny_qwen2`` (hidden_size, layers, heads, seed).
        tiny_vlm: build a tiny random vision-language model instead: keyword arguments of
            :func:`rlobj.rollout.tiny_vlm.build_tiny_vlm` (``kind: llava``, image_size,
            patch_size, hidden_size, layers, heads, chars, seed); rows may then carry ``images``.
        tokenizer_chars: characters of the character tokenizer (tiny model only).
        dtype: parameter dtype: ``float32``, ``bfloat16``, ``float16`` or ``float64``.
        logits: how the training forward gets log-probs and entropy: ``chunked`` from hidden
            states and the output projection chunk by chunk (no ``[tokens, vocab]`` float tensor;
            recomputed in backward), ``full`` from the model's whole logits, ``auto`` (default)
            chunked when the model exposes a decoder and an output projection, else full.
        lora: train LoRA adapters instead of the weights (PEFT): ``{r, alpha, dropout,
            target_modules}``; the reference is the same model with adapters off (no copy),
            checkpoints hold the adapters, the engine gets merged weights
            (:mod:`rlobj.train.adapters`). None (default) trains every weight.
        gradient_checkpointing: recompute each decoder layer's activations in backward (same
            gradients, less memory).
    """

    model_path: str | None = None
    tiny_model: dict[str, Any] | None = None
    tokenizer_chars: str = ARITHMETIC_CHARS
    dtype: str = "float32"
    logits: str = "auto"
    lora: dict[str, Any] | None = None
    gradient_checkpointing: bool = False
    tiny_vlm: dict[str, Any] | None = None

    def __post_init__(self):
        if self.tiny_vlm is not None and (not isinstance(self.tiny_vlm, dict) or self.model_path is not None
                                          or self.tiny_model is not None):
            raise RlobjInputError(f"policy.tiny_vlm: expected a mapping of build_tiny_vlm arguments, given without "
                                  f"model_path or tiny_model; got {self.tiny_vlm!r}")
        if self.logits not in ("auto", "chunked", "full"):
            raise RlobjInputError(f"policy.logits: expected 'auto', 'chunked' or 'full', got {self.logits!r}")
        if self.dtype not in DTYPES:
            raise RlobjInputError(f"policy.dtype: expected one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.model_path is not None and not isinstance(self.model_path, str):
            raise RlobjInputError(f"policy.model_path: expected a directory path, got {self.model_path!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class RolloutConfig:
    r"""How responses are sampled: group size, budget, sampling settings and the engine.

    Args:
        group_size: responses sampled per prompt ($G$).
        max_new_tokens: the response budget in tokens, the end-of-sequence token included (a
            response that stops by itself has at most ``max_new_tokens - 1`` content tokens).
        temperature: sampling temperature; the training forward divides the logits by it too,
            so the log-probs are those of the distribution actually sampled.
        top_p: nucleus sampling mass (1 = off).
        top_k: top-k sampling (0 = off).
        engine: ``"hf"`` (shares the policy module) or ``"vllm"``.
        engine_args: keyword arguments of the engine class.
    """

    group_size: int = 8
    max_new_tokens: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    engine: str = "hf"
    engine_args: dict[str, Any] | None = None

    def __post_init__(self):
        _positive_int("rollout", "group_size", self.group_size)
        _positive_int("rollout", "max_new_tokens", self.max_new_tokens)
        _number("rollout", "temperature", self.temperature, 1e-6)
        _number("rollout", "top_p", self.top_p, 1e-9, 1.0)
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise RlobjInputError(f"rollout.top_k: expected an int >= 0, got {self.top_k!r}")
        if self.engine not in ("hf", "vllm"):
            raise RlobjInputError(f"rollout.engine: expected 'hf' or 'vllm', got {self.engine!r}")


@dataclass(frozen=True)
class UpdateConfig:
    """The update plan of each rollout batch (:class:`~rlobj.train.update.UpdatePlan`).

    Args:
        ppo_epochs: passes over each rollout batch.
        mini_batch_size: rows per optimizer step (None: the whole batch, one step per epoch).
        micro_batch_size: rows per forward/backward (None: the whole mini-batch); changes no
            gradient (the micro-batch law).
        shuffle_minibatches: shuffle rows before cutting mini-batches (seeded by step and seed).
        grad_clip: maximum global gradient norm (None: no clipping).
        packing: padding-free micro-batches: every forward (training, old and reference
            log-probs) runs on the micro-batch's rows packed into one sequence, position ids
            restarting per row and attention kept inside each row
            (:mod:`rlobj.train.packing`); same loss and gradient as padded, no compute on padding.
    """

    ppo_epochs: int = 1
    mini_batch_size: int | None = None
    micro_batch_size: int | None = None
    shuffle_minibatches: bool = False
    grad_clip: float | None = 1.0
    packing: bool = False

    def __post_init__(self):
        _positive_int("update", "ppo_epochs", self.ppo_epochs)
        _positive_int("update", "mini_batch_size", self.mini_batch_size, allow_none=True)
        _positive_int("update", "micro_batch_size", self.micro_batch_size, allow_none=True)
        _number("update", "grad_clip", self.grad_clip, 0.0, allow_none=True)
        if not isinstance(self.packing, bool):
            raise RlobjInputError(f"update.packing: expected true or false, got {self.packing!r}")


@dataclass(frozen=True)
class WarmupConfig:
    """The supervised warm-up: the first ``steps`` batches train ``objective`` on demonstrations.

    Args:
        steps: number of leading data batches trained with ``objective`` (0: none).
        objective: the warm-up objective (a registry name or a list of terms). Default ``sft``.
        lr: learning rate of the warm-up steps (None: the optimizer's own).
        eval_at_end: evaluate once when the warm-up ends (the "before RL" row).
    """

    steps: int = 0
    objective: Any = "sft"
    lr: float | None = None
    eval_at_end: bool = True

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise RlobjInputError(f"warmup.steps: expected an int >= 0, got {self.steps!r}")
        _number("warmup", "lr", self.lr, 0.0, allow_none=True)


@dataclass(frozen=True)
class EvalConfig:
    """pass@k / maj@k evaluation.

    Args:
        samples: samples per evaluation record ($n$).
        k: the k of pass@k and maj@k, each in ``[1, samples]``.
        temperature: sampling temperature of the evaluation.
        max_new_tokens: response budget of the evaluation (None: ``rollout.max_new_tokens``).
        pass_threshold: a sample counts as correct when its reward is at least this.
    """

    samples: int = 8
    k: list[int] = field(default_factory=lambda: [1, 8])
    temperature: float = 1.0
    max_new_tokens: int | None = None
    pass_threshold: float = 1.0

    def __post_init__(self):
        _positive_int("evaluation", "samples", self.samples)
        _positive_int("evaluation", "max_new_tokens", self.max_new_tokens, allow_none=True)
        _number("evaluation", "temperature", self.temperature, 1e-6)
        for k in self.k:
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.samples:
                raise RlobjInputError(f"evaluation.k: every k must be an int in [1, samples={self.samples}], "
                                      f"got {k!r}")


def as_config(cls, value, key: str):
    """``value`` as a ``cls`` instance: the instance itself, a mapping of its fields, or None."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise RlobjInputError(f"{key}: unknown key(s) {unknown}; expected some of {sorted(names)}")
        return cls(**value)
    raise RlobjInputError(f"{key}: expected a mapping of {sorted(f.name for f in dataclasses.fields(cls))} "
                          f"or a {cls.__name__}, got {value!r}")


def default_optimizer(params) -> torch.optim.Optimizer:
    """The default optimizer: ``AdamW(lr=3e-4, betas=(0.9, 0.999), weight_decay=0)``."""
    return torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.999), weight_decay=0.0)


class WarmupSchedule(torch.optim.lr_scheduler.LambdaLR):
    r"""Linear warm-up over ``warmup_steps`` RL updates, then constant or cosine decay.

    The factor of update $u$ (0-based) is $(u + 1) / W$ while $u < W$, then 1 (``shape:
    constant``) or $\tfrac12 (1 + \cos(\pi \min(1, (u - W) / \max(T - W, 1))))$ (``shape: cosine``,
    $T$ = ``total_steps``). The trainer steps it once per RL optimizer step; warm-up SFT steps do
    not advance it. In YAML::

        lr_scheduler:
          class_path: rlobj.train.WarmupSchedule
          init_args: {warmup_steps: 10, shape: cosine, total_steps: 400}
    """

    def __init__(self, optimizer, warmup_steps: int = 0, shape: str = "constant",
                 total_steps: int | None = None):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise RlobjInputError(f"lr_scheduler.warmup_steps: expected an int >= 0, got {warmup_steps!r}")
        if shape not in ("constant", "cosine"):
            raise RlobjInputError(f"lr_scheduler.shape: expected 'constant' or 'cosine', got {shape!r}")
        if shape == "cosine" and not (isinstance(total_steps, int) and total_steps > 0):
            raise RlobjInputError(f"lr_scheduler.total_steps: required (an int > 0) with shape 'cosine', "
                                  f"got {total_steps!r}")
        self.warmup_steps, self.shape, self.total_steps = warmup_steps, shape, total_steps
        super().__init__(optimizer, self.factor)

    def factor(self, update: int) -> float:
        if self.warmup_steps > 0 and update < self.warmup_steps:
            return (update + 1) / self.warmup_steps
        if self.shape == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min(max(update - self.warmup_steps, 0) / span, 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0


# flat keys of rlobj 0.1's RLModule -> their place now (the CLI names it when an old config uses one)
MOVED_KEYS = {
    "model_path": "policy.model_path", "tiny_model": "policy.tiny_model",
    "tokenizer_chars": "policy.tokenizer_chars", "dtype": "policy.dtype",
    "group_size": "rollout.group_size", "max_new_tokens": "rollout.max_new_tokens",
    "temperature": "rollout.temperature", "top_p": "rollout.top_p", "top_k": "rollout.top_k",
    "engine": "rollout.engine", "engine_args": "rollout.engine_args",
    "ppo_epochs": "update.ppo_epochs", "mini_batch_size": "update.mini_batch_size",
    "micro_batch_size": "update.micro_batch_size", "shuffle_minibatches": "update.shuffle_minibatches",
    "grad_clip": "update.grad_clip",
    "warmup_sft_steps": "warmup.steps", "sft_objective": "warmup.objective", "sft_lr": "warmup.lr",
    "eval_at_warmup_end": "warmup.eval_at_end",
    "eval_samples": "evaluation.samples", "eval_k": "evaluation.k",
    "eval_temperature": "evaluation.temperature", "eval_max_new_tokens": "evaluation.max_new_tokens",
    "pass_threshold": "evaluation.pass_threshold",
    "optimizer": "optimizer (class_path: torch.optim.AdamW, init_args: {lr: ...})",
    "lr": "optimizer.init_args.lr", "weight_decay": "optimizer.init_args.weight_decay",
    "betas": "optimizer.init_args.betas",
    "lr_warmup_steps": "lr_scheduler (class_path: rlobj.train.WarmupSchedule, init_args: {warmup_steps: ...})",
    "lr_schedule": "lr_scheduler.init_args.shape (rlobj.train.WarmupSchedule)",
    "total_rl_updates": "lr_scheduler.init_args.total_steps (rlobj.train.WarmupSchedule)",
    "verifier_workers": "scorer (class_path: rlobj.train.VerifierScorer, init_args: {workers: ...})",
    "verifier_timeout": "scorer (class_path: rlobj.train.VerifierScorer, init_args: {timeout: ...})",
}
