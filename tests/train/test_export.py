"""Export: the reloaded Hugging Face model gives the trained policy's log-probs."""

from pathlib import Path

import pytest
import torch

from rlobj.train import export_policy
from rlobj.train.cli import main
from rlobj.train.forward import token_logprobs

from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module

ROOT = Path(__file__).resolve().parents[2]


def _logprobs(model, rollout):
    with torch.no_grad():
        logp, _ = token_logprobs(model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                                 rollout.response_mask)
    return logp[rollout.response_mask]


def _reload(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def test_exported_policy_reloads_with_the_same_logprobs(tmp_path):
    module = tiny_module()
    rollout = synthetic_rollout(module)
    module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))  # weights move off the init
    module.policy.eval()
    path = export_policy(module, tmp_path / "policy")
    model, tokenizer = _reload(path)
    expected, got = _logprobs(module.policy, rollout), _logprobs(model, rollout)
    difference = float((expected - got).abs().max())
    print(f"exported policy: {expected.numel()} response tokens, max |logp - logp_reloaded| = {difference:.3e}")
    assert difference == 0.0
    assert tokenizer.encode("12+3=", add_special_tokens=False) == module.encode("12+3=")
    card = (path / "README.md").read_text()
    assert "- objective: `grpo`" in card and "RL optimizer updates: 1" in card


def test_a_peft_policy_is_exported_merged(tmp_path):
    import peft
    module = tiny_module()
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    module.policy = peft.get_peft_model(module.policy, config)
    module.policy.eval()
    rollout = synthetic_rollout(module)
    path = export_policy(module, tmp_path / "merged")
    assert not (path / "adapter_config.json").exists()
    model, _ = _reload(path)
    difference = float((_logprobs(module.policy, rollout) - _logprobs(model, rollout)).abs().max())
    print(f"LoRA policy exported merged: max |logp - logp_reloaded| = {difference:.3e}")
    assert difference < 1e-5
    assert hasattr(module.policy, "peft_config")  # the training policy itself is left as it was


def test_export_needs_a_built_policy(tmp_path):
    from rlobj.ops.errors import RlobjInputError
    from rlobj.train import RLModule

    with pytest.raises(RlobjInputError, match="not built"):
        export_policy(RLModule(), tmp_path)


@pytest.mark.slow
def test_export_callback_and_subcommand(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    common = ["--config", str(ROOT / "examples/configs/default.yaml"), "--data.eval_size=2",
              "--model.evaluation.samples=2", "--model.evaluation.k=[1, 2]", "--trainer.logger=false"]
    main(["fit", *common, "--trainer.max_steps=2", "--model.warmup.steps=1", "--data.prompts_per_step=2",
          "--trainer.enable_checkpointing=true", "--trainer.default_root_dir=run",
          "--trainer.callbacks=[{class_path: rlobj.train.ExportPolicy, init_args: {directory: policy}}]"])
    assert "exported the policy to run/policy" in capsys.readouterr().out
    checkpoint = next((tmp_path / "run").rglob("*.ckpt"))
    main(["export", *common, f"--ckpt_path={checkpoint}", "--export_dir=from_ckpt"])
    a, _ = _reload(tmp_path / "run" / "policy")
    b, _ = _reload(tmp_path / "from_ckpt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert "RL optimizer updates: 1" in (tmp_path / "from_ckpt" / "README.md").read_text()


def test_an_exported_character_tokenizer_keeps_spaces_when_the_module_reloads_it(tmp_path):
    """Defect found by the reproductions (issue 22): transformers 5's AutoTokenizer loads the saved
    character tokenizer next to a Qwen2 config as a Qwen2Tokenizer, whose pre-tokenizer drops
    spaces; ``policy.model_path`` now loads it with ``load_tokenizer`` and encodes as before."""
    from rlobj.ops.tokenizer import load_tokenizer
    from rlobj.train import RLModule

    module = tiny_module()
    path = export_policy(module, tmp_path / "policy")
    text = "12 + 3 ="
    assert load_tokenizer(path).encode(text, add_special_tokens=False) == module.encode(text)
    reloaded = RLModule(policy={"model_path": str(path)})
    reloaded.build()
    assert reloaded.encode(text) == module.encode(text)
    assert reloaded.tokenizer.rlobj_chars == module.tokenizer.rlobj_chars
