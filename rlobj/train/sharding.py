r"""FSDP2 for the policy: ``fully_shard`` per decoder layer, under Lightning's ModelParallelStrategy.

With ``trainer.strategy: {class_path: lightning.pytorch.strategies.ModelParallelStrategy,
init_args: {data_parallel_size: N, tensor_parallel_size: 1}}`` Lightning builds the device mesh
and calls the module's ``configure_model``, which shards the policy here: each decoder layer is
one FSDP unit (its parameters gathered for its own forward and backward only), the root holds the
embeddings, the final norm and the output layer. Gradients are reduce-scattered by FSDP; the
module's clipping norm is taken over the sharded gradients (a DTensor, reduced across ranks).
The reference, when one is needed and LoRA does not provide it, is a copy made before sharding
and sharded the same way. rlobj writes no distributed runtime of its own: this is torch's FSDP2.
"""

import copy

import torch

from rlobj.ops.errors import RlobjInputError

__all__ = ["decoder_layers", "full_value", "is_sharded", "shard_module", "shard_policy", "sharded_copy"]


def decoder_layers(model) -> list[torch.nn.Module]:
    """The decoder's layers (``model.get_decoder().layers``), the units FSDP2 shards."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = target.get_decoder() if hasattr(target, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise RlobjInputError(f"FSDP2: {type(target).__name__} exposes no decoder layers (get_decoder().layers)")
    return list(layers)


def shard_policy(policy, mesh) -> None:
    """``fully_shard`` each decoder layer, then the root, on ``mesh`` (1-D data-parallel mesh)."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(policy):
        fully_shard(layer, mesh=mesh)
    fully_shard(policy, mesh=mesh)


def sharded_copy(policy, mesh):
    """A frozen copy of an unsharded ``policy``, sharded like it (the reference under FSDP2)."""
    reference = copy.deepcopy(policy).requires_grad_(False)
    shard_policy(reference, mesh)
    return reference


def is_sharded(model) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_value(tensor) -> torch.Tensor:
    """A DTensor's full value (``full_tensor()``, a collective), a plain tensor as it is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def shard_module(module, mesh) -> None:
    """Shard an :class:`~rlobj.train.RLModule`'s policy (and its reference) on Lightning's device mesh.

    Refuses tensor parallelism (``tensor_parallel_size > 1``) and an explicit ``policy.logits:
    chunked`` (the chunked path reads the output layer's weight outside its forward, where FSDP2
    keeps it sharded); ``auto`` falls back to full logits. Without LoRA the reference is a copy
    made here, before sharding, and sharded the same way.
    """
    if "tensor_parallel" in mesh.mesh_dim_names and mesh["tensor_parallel"].size() > 1:
        raise RlobjInputError("trainer.strategy: tensor_parallel_size > 1 is not supported; use "
                              "ModelParallelStrategy(data_parallel_size=N, tensor_parallel_size=1)")
    dp = mesh["data_parallel"] if "data_parallel" in mesh.mesh_dim_names else mesh
    if module.models.logits == "chunked":
        if module.cfg.policy.logits == "chunked":
            raise RlobjInputError("policy.logits: 'chunked' is not supported under FSDP2 (the output layer's "
                                  "weight is sharded outside its forward); use 'auto' or 'full'")
        module.models.logits = "full"
    if module.cfg.policy.lora is None:
        reference = sharded_copy(module.policy, dp)
        module.models._reference_factory = lambda: reference
    shard_policy(module.policy, dp)
