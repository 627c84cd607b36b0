"""The sync stage (rlobj/train/sync.py): nothing to push without an engine or when the engine samples
from the policy module itself; otherwise every weight under its Hugging Face name, merged for LoRA.
(The FSDP v1 gather runs only under several processes and is not exercised here.)"""

import pytest
import torch

from rlobj.train.sync import push_weights

from ._helpers import tiny_module

LORA = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}


class Recorder:
    def __init__(self, model=None):
        self.model, self.pushed = model, None

    def update_weights(self, named):
        self.pushed = {name: tensor.detach().clone() for name, tensor in named}


def test_no_engine_or_a_shared_module_is_a_no_op():
    module = tiny_module()
    push_weights(module.policy, None)
    shared = Recorder(model=module.policy)
    push_weights(module.policy, shared)
    assert shared.pushed is None


def test_a_separate_engine_gets_every_parameter_by_name():
    module = tiny_module()
    engine = Recorder()
    push_weights(module.policy, engine)
    expected = dict(module.policy.named_parameters())
    assert engine.pushed.keys() == expected.keys()
    assert all(torch.equal(engine.pushed[name], p.detach()) for name, p in expected.items())


def test_a_lora_policy_pushes_merged_weights_under_the_base_names():
    pytest.importorskip("peft")
    module = tiny_module(policy={"lora": LORA})
    policy = module.policy
    for name, parameter in policy.named_parameters():  # non-zero adapters, so the merge matters
        if "lora_B" in name:
            torch.nn.init.constant_(parameter.data, 0.01)
    engine = Recorder()
    push_weights(policy, engine)
    base = policy.get_base_model()
    assert not any("lora_" in name for name in engine.pushed)
    assert engine.pushed.keys() == {name.replace(".base_layer", "") for name, _ in base.named_parameters()
                                    if "lora_" not in name}
    q_name = next(name for name in engine.pushed if name.endswith("q_proj.weight"))
    layer = dict(base.named_modules())[q_name.removesuffix(".weight")]
    delta = layer.get_delta_weight("default")
    torch.testing.assert_close(engine.pushed[q_name], layer.base_layer.weight.detach() + delta.detach())
