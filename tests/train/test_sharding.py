"""FSDP2 helpers (rlobj/train/sharding.py) in one process: the decoder layers that become FSDP units,
plain tensors and unsharded models, and the strategies shard_module refuses before sharding anything.
Sharding itself needs several processes: tests/train/test_fsdp.py runs it under gloo."""

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.sharding import decoder_layers, full_value, is_sharded, shard_module

from ._helpers import tiny_module


def test_decoder_layers_of_the_tiny_policy_and_an_error_for_other_models():
    module = tiny_module(policy={"tiny_model": {"hidden_size": 64, "layers": 2, "heads": 2, "seed": 0}})
    layers = decoder_layers(module.policy)
    assert len(layers) == 2 and all(layer in list(module.policy.modules()) for layer in layers)
    with pytest.raises(RlobjInputError, match=r"^FSDP2: Linear exposes no decoder layers \(get_decoder\(\).layers\)$"):
        decoder_layers(torch.nn.Linear(2, 2))


def test_unsharded_values_pass_through():
    module = tiny_module()
    assert not is_sharded(module.policy)
    tensor = torch.arange(3.0)
    assert full_value(tensor) is tensor


class Dim:
    def __init__(self, size):
        self._size = size

    def size(self):
        return self._size


class Mesh:
    def __init__(self, **dims):
        self.mesh_dim_names, self._dims = tuple(dims), dims

    def __getitem__(self, name):
        return Dim(self._dims[name])


def test_shard_module_refuses_tensor_parallelism_and_explicit_chunked_logits():
    module = tiny_module(policy={"logits": "chunked"})
    before = [p.detach().clone() for p in module.policy.parameters()]
    with pytest.raises(RlobjInputError, match=r"^trainer.strategy: tensor_parallel_size > 1 is not supported"):
        shard_module(module, Mesh(data_parallel=1, tensor_parallel=2))
    with pytest.raises(RlobjInputError, match=r"^policy.logits: 'chunked' is not supported under FSDP2"):
        shard_module(module, Mesh(data_parallel=1, tensor_parallel=1))
    assert not is_sharded(module.policy)  # refused before anything was sharded
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, module.policy.parameters(), strict=True))
