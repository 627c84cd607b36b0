"""The trainer computes the inputs an objective reads (from its chain's slots_read()):
Lp-Reg's proxy log-probs, vocab views of the policy and reference, PAPO's perturbed log-probs."""

import math

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.perception import PromptSpanMask, perception_forward
from rlobj.train.forward import final_hidden_states, token_logprobs, view_logprobs, vocab_view

from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module

LP_REG_FKL = ["grpo", {"lp_reg": {"tau": 0.7, "rho": 0.5, "strict_reference_quirk": False}},
              {"forward_kl": {"beta": 0.01}}]


def _args(rollout, rows=slice(None)):
    return (rollout.prompt_ids[rows], rollout.prompt_mask[rows], rollout.response_ids[rows],
            rollout.response_mask[rows])


def _full_logits(module, rollout, temperature=1.0):
    """Plain reference: the whole [batch, seq, vocab] logits of the HF forward."""
    input_ids = torch.cat([rollout.prompt_ids, rollout.response_ids], 1)
    attention = torch.cat([rollout.prompt_mask, rollout.response_mask], 1)
    from rlobj.rollout.logprobs import positions_from_mask

    with torch.no_grad():
        logits = module.policy(input_ids=input_ids, attention_mask=attention.long(),
                               position_ids=positions_from_mask(attention)).logits
    return logits[:, -(rollout.response_ids.shape[1] + 1):-1].float() / temperature


def test_view_forward_matches_the_logits_forward():
    module = tiny_module()
    rollout = synthetic_rollout(module)
    with torch.no_grad():
        logp, entropy = token_logprobs(module.policy, *_args(rollout), temperature=0.7, with_entropy=True)
        view = vocab_view(module.policy, *_args(rollout), temperature=0.7)
        v_logp, v_entropy = view_logprobs(view, rollout.response_ids, rollout.response_mask)
        hidden = final_hidden_states(module.policy, *_args(rollout))
    assert hidden.shape == (*rollout.response_ids.shape, 128)
    assert torch.allclose(v_logp, logp, atol=1e-5) and torch.allclose(v_entropy, entropy, atol=1e-5)
    assert bool((v_logp[~rollout.response_mask] == 0).all())


def test_lp_reg_proxy_matches_a_plain_loop():
    module = tiny_module(objective=LP_REG_FKL, micro_batch_size=5)
    rollout = synthetic_rollout(module)
    proxy = module._proxy_logprobs(rollout, 0.9, "minp")
    probs = torch.softmax(_full_logits(module, rollout), -1)  # temperature 1, whatever the sampling T
    for i in range(len(rollout)):
        for t in range(rollout.response_ids.shape[1]):
            if not rollout.response_mask[i, t]:
                assert proxy[i, t] == 0
                continue
            p = probs[i, t]
            kept = p >= 0.9 * p.max()
            token = int(rollout.response_ids[i, t])
            expected = math.log(p[token] / p[kept].sum()) if kept[token] else -1e4
            assert float(proxy[i, t]) == pytest.approx(expected, abs=1e-4), (i, t)
    assert (proxy[rollout.response_mask] < -1e3).any() and (proxy[rollout.response_mask] > -1e3).any()


def test_lp_reg_forward_kl_update(monkeypatch):
    module = tiny_module(objective=LP_REG_FKL, micro_batch_size=8)
    assert module._proxy_settings == (0.7, "minp")
    metrics = module.update_on_rollout(synthetic_rollout(module), synthetic_rewards(16))
    assert metrics["lp_reg/selected_count"] > 0 and metrics["lp_reg/penalty"] > 0
    # the reference is the policy at the first RL step: forward KL to it is 0 before the update
    assert metrics["kl/ref_forward_full"] == pytest.approx(0.0, abs=1e-6)
    assert all(math.isfinite(v) for v in metrics.values())
    second = module.update_on_rollout(synthetic_rollout(module, seed=1), synthetic_rewards(16, seed=1))
    assert second["kl/ref_forward_full"] > 1e-6
    # values given by the caller win: nothing is recomputed
    monkeypatch.setattr(module, "_proxy_logprobs", lambda *a: pytest.fail("proxy recomputed"))
    rollout = synthetic_rollout(module, seed=2)
    module.update_on_rollout(rollout, synthetic_rewards(16), extras={"logp_proxy": rollout.logp_rollout.clone()})


def _weights(module):
    return torch.cat([p.detach().flatten() for p in module.policy.parameters()])


def test_vocab_path_gives_the_same_update_as_the_logits_path():
    """forward_kl(beta=0) switches the trainer to the vocab-view forward; the gradient of the same
    surrogate must not change (the view back-propagates analytically, chunk by chunk)."""
    plain = tiny_module(objective="grpo", micro_batch_size=6)
    viewed = tiny_module(objective=["grpo", {"forward_kl": {"beta": 0.0}}], micro_batch_size=6)
    rollout = synthetic_rollout(plain)
    before = _weights(plain)
    a = plain.update_on_rollout(rollout, synthetic_rewards(16))
    b = viewed.update_on_rollout(rollout, synthetic_rewards(16))
    assert (_weights(plain) - before).abs().max() > 1e-3
    assert torch.allclose(_weights(plain), _weights(viewed), atol=2e-5, rtol=0)
    assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-5)


def test_perceptual_inputs():
    objective = ["grpo", {"perception_kl": {"gamma": 0.01}}]
    module = tiny_module(objective=objective, perception={"ratio": 0.0})
    metrics = module.update_on_rollout(synthetic_rollout(module), synthetic_rewards(16))
    assert metrics["perception/kl"] == pytest.approx(0.0, abs=1e-6)  # nothing masked: same distribution
    module = tiny_module(objective=objective, perception={"ratio": 1.0, "span": 2})
    rollout = synthetic_rollout(module)
    logp = module._perturbed(rollout, with_vocab=False, salt=0)
    with torch.no_grad():
        direct = perception_forward(module.policy, *_args(rollout), PromptSpanMask(ratio=1.0, span=2),
                                    step=4096).logp
    assert torch.equal(logp, direct)
    metrics = module.update_on_rollout(rollout, synthetic_rewards(16))
    assert metrics["perception/kl"] > 1e-4
    full = tiny_module(objective=["grpo", {"perception_kl": {"estimator": "full"}}], perception={"ratio": 1.0},
                       micro_batch_size=5)
    assert full.update_on_rollout(rollout, synthetic_rewards(16))["perception/kl"] > 1e-4
    assert tiny_module(objective=objective).perception == PromptSpanMask()


@pytest.mark.parametrize("kwargs, match", [
    ({"perception": {"ratio": 2.0}}, "perception: PromptSpanMask.ratio"),
    ({"perception": {"spam": 1}}, "perception: .*spam"),
    ({"objective": ["grpo", {"lp_reg": {"tau": 0.1}}, {"lp_reg": {"tau": 0.2}}]}, "disagree"),
])
def test_bad_input_names_the_argument(kwargs, match):
    from rlobj.train import RLModule

    with pytest.raises(RlobjInputError, match=match):
        RLModule(**kwargs)


@pytest.mark.parametrize("config", ["lp_reg_forward_kl.yaml", "papo_text.yaml"])
def test_example_config_trains_a_few_steps(config, tmp_path, monkeypatch):
    """Smoke: the shipped YAML runs 1 sft + 2 RL steps through the CLI (small overrides only)."""
    from pathlib import Path

    from rlobj.train.cli import main

    monkeypatch.chdir(tmp_path)
    path = Path(__file__).resolve().parents[2] / "examples" / "configs" / config
    main(["fit", "--config", str(path), "--trainer.max_steps=3", "--model.warmup_sft_steps=1",
          "--data.prompts_per_step=4", "--model.group_size=4", "--data.eval_size=4", "--model.eval_samples=2",
          "--model.eval_k=[1, 2]", "--model.tiny_model={hidden_size: 128, layers: 1, heads: 2, seed: 0}",
          "--trainer.callbacks=[]", "--trainer.logger.init_args.save_dir=runs"])
    import csv
    import glob

    (metrics_csv,) = glob.glob(str(tmp_path / "runs" / "**" / "metrics.csv"), recursive=True)
    rows = list(csv.DictReader(open(metrics_csv)))
    rl = [r for r in rows if r.get("phase") == "1.0"]
    assert len(rl) == 2
    key = "kl/ref_forward_full" if "lp_reg" in config else "perception/kl"
    for row in rl:
        assert math.isfinite(float(row[key])) and math.isfinite(float(row["loss"]))
