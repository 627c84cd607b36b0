"""LoRA through PEFT (policy.lora) and activation checkpointing (policy.gradient_checkpointing)."""

import copy
import functools
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rlobj.ops.errors import RlobjInputError
from rlobj.train.adapters import AdaptersOff, adapter_state, merged_weights

from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module

pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[2]
LORA = {"r": 4, "alpha": 8}




def test_lora_reference_is_the_initial_policy_without_a_copy():
    module = tiny_module(objective=["grpo", {"k3_kl": {"beta": 0.1}}], policy={"lora": LORA},
                         update={"micro_batch_size": 5})
    plain = tiny_module()
    rollout = synthetic_rollout(module)
    start, _ = module.models.no_grad_logprobs(rollout)
    base, _ = plain.models.no_grad_logprobs(rollout)
    assert torch.allclose(start, base, atol=1e-6)  # B = 0: the adapted model starts as the base
    trainable = {n for n, p in module.policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    for _ in range(3):
        module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
    after, _ = module.models.no_grad_logprobs(rollout)
    reference, _ = module.models.no_grad_logprobs(rollout, module.models.reference)
    assert (after - start).abs().max() > 1e-3  # the adapters moved the policy
    assert torch.equal(reference, start)  # adapters off = the initial policy, exactly
    assert isinstance(module.models.reference, AdaptersOff) and module.reference is None  # nothing to save
    # parameter memory: the reference adds no storage (a deep-copied reference would double it)
    storages = {p.untyped_storage().data_ptr() for p in module.policy.parameters()}
    ref_storages = {p.untyped_storage().data_ptr() for p in module.models.reference.parameters()}
    assert ref_storages == storages
    assert all(p.requires_grad for n, p in module.policy.named_parameters() if n in trainable)  # flags kept


def test_merged_weights_equal_peft_merge_and_base_names():
    module = tiny_module(policy={"lora": LORA})
    rollout = synthetic_rollout(module)
    module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
    merged = dict(merged_weights(module.policy))
    reference = copy.deepcopy(module.policy).merge_and_unload()
    assert set(merged) == {n for n, _ in reference.named_parameters()} == {n for n, _ in tiny_module().policy.named_parameters()}
    for name, parameter in reference.named_parameters():
        assert torch.allclose(merged[name], parameter, atol=1e-7), name
    # out of place: the base weights did not change
    base = module.policy.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert torch.equal(base, tiny_module().policy.model.layers[0].self_attn.q_proj.weight)


def test_lora_checkpoint_holds_adapters_only_and_resumes(tmp_path):
    from rlobj.train.cli import run

    config = yaml.safe_load((ROOT / "examples/configs/default.yaml").read_text())
    config["trainer"] = {**config["trainer"], "max_steps": 2, "logger": False, "callbacks": None,
                         "enable_checkpointing": True, "default_root_dir": str(tmp_path / "run")}
    config["model"] = {**config["model"], "warmup": {"steps": 0, "eval_at_end": False},
                       "policy": {"tiny_model": {"hidden_size": 32, "layers": 1, "heads": 2, "seed": 0}, "lora": LORA},
                       "rollout": {"group_size": 4, "max_new_tokens": 4},
                       "verifier": {"class_path": "train._helpers.StartsWithDigit"}}
    config["data"] = {**config["data"], "prompts_per_step": 2, "eval_size": 2}
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(config))
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        cli = run(["fit", "--config", str(path)])
    finally:
        sys.path.remove(str(ROOT / "tests"))
    checkpoint_path = next((tmp_path / "run").rglob("*.ckpt"))
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    keys = set(checkpoint["state_dict"])
    assert keys and all("lora_" in k for k in keys)
    assert keys == set(adapter_state(cli.model.state_dict()))
    # a fresh module loads the adapters onto the same base and computes the same log-probs
    fresh = tiny_module(policy={"tiny_model": {"hidden_size": 32, "layers": 1, "heads": 2, "seed": 0}, "lora": LORA})
    fresh.load_state_dict(checkpoint["state_dict"], strict=False)
    rollout = synthetic_rollout(fresh)
    cli.model.policy.eval()
    fresh.policy.eval()
    assert torch.equal(cli.model.models.no_grad_logprobs(rollout)[0], fresh.models.no_grad_logprobs(rollout)[0])


def test_bad_lora_settings_name_the_key():
    with pytest.raises(RlobjInputError, match="policy.lora: unknown key"):
        tiny_module(policy={"lora": {"rank": 4}})
    with pytest.raises(RlobjInputError, match="policy.lora.r"):
        tiny_module(policy={"lora": {"r": 0}})
    with pytest.raises(RlobjInputError, match="policy.lora.target_modules"):
        tiny_module(policy={"lora": {"r": 2, "target_modules": ["no_such_proj"]}})


def test_gradient_checkpointing_same_gradient_lower_peak():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vocab_terms", ROOT / "benchmarks/vocab_terms.py")
    vocab_terms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vocab_terms)
    results = {}
    for checkpointing in (False, True):
        module = tiny_module(policy={"tiny_model": {"hidden_size": 128, "layers": 4, "heads": 2, "seed": 0},
                                     "gradient_checkpointing": checkpointing, "dtype": "float64"})
        rollout = synthetic_rollout(module, groups=4, group_size=4)
        module.policy.train()
        with vocab_terms.LiveBytes() as tracer:
            logp, _ = module.models.forward(rollout, slice(None))
            (logp * rollout.response_mask).sum().backward()
        grads = {n: p.grad.clone() for n, p in module.policy.named_parameters()}
        peak, _ = tracer.summary([p.grad.untyped_storage() for p in module.policy.parameters()])
        results[checkpointing] = (grads, peak)
    for name, grad in results[False][0].items():
        assert torch.allclose(grad, results[True][0][name], atol=1e-12, rtol=0), name
    assert results[True][1] < results[False][1]


def test_bf16_compute_with_float32_master_weights_keeps_small_updates():
    """trainer.precision: bf16-mixed with policy.dtype float32 (the GPU recipe): an lr 1e-6 AdamW step
    changes ~all weights; with bfloat16 weights most of the same step rounds away."""
    changed = {}
    for dtype in ("float32", "bfloat16"):
        module = tiny_module(policy={"dtype": dtype}, update={"micro_batch_size": 8},
                             optimizer=functools.partial(torch.optim.AdamW, lr=1e-6, weight_decay=0.0))
        rollout = synthetic_rollout(module)
        before = [p.detach().clone() for p in module.policy.parameters()]
        with torch.autocast("cpu", dtype=torch.bfloat16):  # what Lightning's bf16-mixed plugin does
            module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
        moved = [(p.detach() != b).float().mean() for p, b in zip(module.policy.parameters(), before)]
        changed[dtype] = float(sum(moved) / len(moved))
    assert changed["float32"] > 0.9  # almost every master weight moved
    assert changed["bfloat16"] < 0.5  # 1e-6 is below bf16's resolution for most weights (measured: 21% moved)
