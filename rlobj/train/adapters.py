r"""LoRA adapters (PEFT) and activation checkpointing for the policy.

With ``policy.lora`` set, the policy is a PEFT model: only the adapters train, and the reference
is the same model with its adapters switched off (:class:`AdaptersOff`), so no second copy of the
weights exists. :func:`merged_weights` gives the engine the weights it samples from (base plus
adapter deltas, Hugging Face names), computed out of place so the base weights never drift.
Checkpoints keep the adapters only (:func:`adapter_state`).
"""

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError

__all__ = ["AdaptersOff", "adapter_state", "apply_lora", "enable_checkpointing", "is_lora", "merged_weights"]

_LORA_KEYS = ("r", "alpha", "dropout", "target_modules")


def apply_lora(model, spec: dict[str, Any]):
    """``model`` wrapped by PEFT with a LoRA adapter of ``spec`` (r, alpha, dropout, target_modules).

    ``target_modules`` defaults to the attention and MLP projections of Llama/Qwen-style models.
    The base weights are frozen; the adapters' B matrices start at 0, so the wrapped model equals
    ``model`` until the first update.
    """
    unknown = sorted(set(spec) - set(_LORA_KEYS))
    if unknown:
        raise RlobjInputError(f"policy.lora: unknown key(s) {unknown}; expected some of {list(_LORA_KEYS)}")
    r = spec.get("r", 8)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise RlobjInputError(f"policy.lora.r: expected an int >= 1, got {r!r}")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:  # pragma: no cover - peft is in the train extra
        raise RlobjInputError("policy.lora: needs the peft package (pip install 'rlobj[train]')") from error
    targets = spec.get("target_modules") or ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]
    config = LoraConfig(r=r, lora_alpha=spec.get("alpha", 2 * r), lora_dropout=spec.get("dropout", 0.0),
                        target_modules=list(targets), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        raise RlobjInputError(f"policy.lora.target_modules: {error}") from error


def is_lora(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "get_base_model")


class _Switched:
    """A callable that runs ``module`` with the adapters of ``peft_model`` switched off."""

    def __init__(self, peft_model, module):
        self._peft, self._module = peft_model, module

    def __call__(self, *args, **kwargs):
        with self._peft.disable_adapter():
            return self._module(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)


class AdaptersOff:
    r"""The LoRA policy with its adapters switched off (PEFT ``disable_adapter``): $\pi_\text{ref}$
    without a second copy of the weights.

    Calls of the model and of its decoder (``get_decoder()``, which the chunked log-prob path
    uses) run with the adapters off; everything else reads through to the policy. It never
    changes the policy's ``requires_grad`` flags, and it is not saved in checkpoints.
    """

    def __init__(self, peft_model):
        self._peft = peft_model

    def __call__(self, *args, **kwargs):
        with self._peft.disable_adapter():
            return self._peft(*args, **kwargs)

    def get_decoder(self):
        return _Switched(self._peft, self._peft.get_decoder())

    def requires_grad_(self, requires_grad: bool = True):
        return self  # the reference's weights are the policy's: leave its flags alone

    def __getattr__(self, name):
        return getattr(self._peft, name)


def _hf_name(name: str) -> str:
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


@torch.no_grad()
def merged_weights(peft_model) -> Iterator[tuple[str, Tensor]]:
    """``(Hugging Face name, weight)`` of the base model with every adapter delta added, out of place."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, Tensor] = {}
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and hasattr(module, "base_layer"):
            delta = sum(module.get_delta_weight(a) for a in module.active_adapters if a in module.lora_A)
            merged[_hf_name(name + ".base_layer.weight")] = module.base_layer.weight + delta
    for name, parameter in peft_model.named_parameters():
        if "lora_" in name:
            continue
        hf = _hf_name(name)
        yield hf, merged.get(hf, parameter.detach())


def adapter_state(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """The adapter entries of a module state dict (what a LoRA checkpoint keeps)."""
    return {k: v for k, v in state_dict.items() if "lora_" in k}


def enable_checkpointing(model) -> None:
    """Activation (gradient) checkpointing in every decoder layer, non-reentrant.

    Saves the layers' activations only at layer boundaries and recomputes them in backward:
    the same gradients, less memory, about one more forward of time.
    """
    target = model.get_base_model() if is_lora(model) else model
    if not getattr(target, "supports_gradient_checkpointing", False):
        raise RlobjInputError(f"policy.gradient_checkpointing: {type(target).__name__} does not support it")
    if hasattr(target, "activation_checkpointing_enable"):  # transformers >= 5.2x
        target.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # pragma: no cover - older transformers
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
