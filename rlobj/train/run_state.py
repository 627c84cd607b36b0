"""The run state a checkpoint holds beside the weights (term state, data position, updates, the
reference, sampler and transform state, the data loop's per-prompt statistics, random states), as plain tensors and ints so checkpoints
load with ``torch.load(weights_only=True)``."""

import random

import numpy as np
import torch

__all__ = ["load_run_state", "rng_state", "save_run_state", "set_rng_state", "stable_term_keys"]


def rng_state() -> dict:
    """Torch, Python and NumPy random states as plain tensors / ints (weights_only-loadable)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                      "has_gauss": int(has_gauss), "cached": float(cached)}}


def set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    python = rng["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss"]))
    numpy = rng["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))


def save_run_state(module, checkpoint: dict) -> None:
    """Put ``module``'s run state under ``checkpoint["rlobj"]`` (LoRA: the state dict keeps the adapters)."""
    reference = module.reference
    reference_state = None if reference is None else reference.state_dict()
    if reference_state is not None and getattr(module, "_sharded", False):
        # FSDP2: full tensors (a collective on every rank); Lightning writes this part of the
        # checkpoint from rank 0 alone, so local shards would give rank 0's shards to every rank
        from rlobj.train.sharding import full_value

        reference_state = {name: full_value(value) for name, value in reference_state.items()}
    if module.cfg.policy.lora is not None:
        from rlobj.train.adapters import adapter_state

        checkpoint["state_dict"] = adapter_state(checkpoint["state_dict"])
    checkpoint["rlobj"] = {
        "term_state": module.term_state,
        "data_position": module.data_position,
        "rl_updates": module.rl_updates,
        "eval_history": module.eval_history,
        "rng": rng_state(),
        "reference": reference_state,
        "sampler": module.sampler.state_dict(),
        "transforms": [t.state_dict() if hasattr(t, "state_dict") else {} for t in module.transforms],
        "scorer": module.scorer.state_dict() if hasattr(module.scorer, "state_dict") else {},
        "data_loop": (module.data_loop.state_dict() if getattr(module, "data_loop", None) is not None
                      else getattr(module, "_pending_data_loop", None)),
    }


def stable_term_keys(term_state: dict, terms) -> dict:
    """Term state re-keyed from ``"<index>:<name>"`` (checkpoints written before term state was
    keyed by stable names) to :func:`rlobj.algebra.term.term_keys`; other keys are kept.

    Example:
        >>> from rlobj import grpo
        >>> sorted(stable_term_keys({"0:group_zscore": 1, "9:gone": 2, "clip_ratio": 3}, grpo.terms))
        ['9:gone', 'clip_ratio', 'group_zscore']
    """
    from rlobj.algebra.term import term_keys, term_name

    keys, out = term_keys(terms), {}
    for key, value in term_state.items():
        index, colon, name = key.partition(":")
        if colon and index.isdigit() and int(index) < len(terms) and term_name(terms[int(index)]) == name:
            key = keys[int(index)]
        out[key] = value
    return out


def load_run_state(module, checkpoint: dict) -> None:
    """Restore what :func:`save_run_state` saved (a checkpoint without it loads the weights only)."""
    import copy

    saved = checkpoint.get("rlobj")
    if saved is None:
        return
    module.build()
    module.term_state = stable_term_keys(dict(saved["term_state"]), module.objective.chain.terms)
    module.data_position = int(saved["data_position"])
    module.rl_updates = int(saved["rl_updates"])
    module.eval_history = list(saved["eval_history"])
    if saved.get("reference") is not None:
        if getattr(module, "_sharded", False):  # FSDP2: the sharded copy exists; shard the full state into it
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
            )

            set_model_state_dict(module.models.reference, saved["reference"],
                                 options=StateDictOptions(full_state_dict=True))
        else:
            reference = copy.deepcopy(module.policy).requires_grad_(False)
            reference.load_state_dict(saved["reference"])
            module.models.set_reference(reference)
    module.sampler.load_state_dict(saved.get("sampler") or {})
    for transform, state in zip(module.transforms, saved.get("transforms") or []):
        if hasattr(transform, "load_state_dict"):
            transform.load_state_dict(state)
    if saved.get("scorer") and hasattr(module.scorer, "load_state_dict"):
        module.scorer.load_state_dict(saved["scorer"])
    if saved.get("data_loop") is not None:  # per-prompt statistics and the data strategy's state
        if getattr(module, "data_loop", None) is not None:
            module.data_loop.load_state_dict(saved["data_loop"])
        else:
            module._pending_data_loop = saved["data_loop"]
    set_rng_state(saved["rng"])
