"""The providers compute the inputs an objective reads (from its chain's slots_read()):
Lp-Reg's proxy log-probs, vocab views of the policy and reference, PAPO's perturbed log-probs."""

import math

import pytest
import torch

from rlobj.algebra import Objective
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.perception import PromptSpanMask, perception_forward
from rlobj.train.forward import final_hidden_states, token_logprobs, view_logprobs, vocab_view
from rlobj.train.providers import LpRegProxy, PerturbedContext
from rlobj.train.stages import Batch

from ._forward_refs import batch_of, full_logits
from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module

LP_REG_FKL = ["grpo", {"lp_reg": {"tau": 0.7, "rho": 0.5, "strict_reference_quirk": False}},
              {"forward_kl": {"beta": 0.01}}]


def _args(rollout, rows=slice(None)):
    return (rollout.prompt_ids[rows], rollout.prompt_mask[rows], rollout.response_ids[rows],
            rollout.response_mask[rows])


def _provider(module, cls):
    (provider,) = [p for p in module.providers if isinstance(p, cls)]
    return provider


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
    module = tiny_module(objective=LP_REG_FKL, update=dict(micro_batch_size=5))
    rollout = synthetic_rollout(module)
    proxy = LpRegProxy(tau=0.9, mode="minp").batch(module.context(0), batch_of(rollout), {})["extras:logp_proxy"]
    assert proxy.dtype == torch.float32 and proxy.shape == rollout.response_ids.shape
    probs = torch.softmax(full_logits(module, rollout), -1)  # temperature 1, whatever the sampling T
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
    module = tiny_module(objective=LP_REG_FKL, update=dict(micro_batch_size=8))
    provider = _provider(module, LpRegProxy)
    assert (provider.tau, provider.mode) == (0.7, "minp") and provider.needed == {"extras:logp_proxy"}
    metrics = module.update_on_rollout(synthetic_rollout(module), synthetic_rewards(16))
    assert metrics["lp_reg/selected_count"] > 0 and metrics["lp_reg/penalty"] > 0
    # the reference is the policy at the first RL step: forward KL to it is 0 before the update
    assert metrics["kl/ref_forward_full"] == pytest.approx(0.0, abs=1e-6)
    assert all(math.isfinite(v) for v in metrics.values())
    second = module.update_on_rollout(synthetic_rollout(module, seed=1), synthetic_rewards(16, seed=1))
    assert second["kl/ref_forward_full"] > 1e-6
    # values given by the caller win: nothing is recomputed
    from rlobj.terms.regularizers import ProxyLogProb

    monkeypatch.setattr(ProxyLogProb, "finalize", lambda *a, **k: pytest.fail("proxy recomputed"))
    seen = []
    original = Objective.prepare
    monkeypatch.setattr(Objective, "prepare", lambda self, state=None, **f: seen.append(f) or original(self, state, **f))
    rollout = synthetic_rollout(module, seed=2)
    given = rollout.logp_rollout.clone()
    module.update_on_rollout(rollout, synthetic_rewards(16), extras={"logp_proxy": given})
    assert seen[0]["extras"]["logp_proxy"] is given


def _weights(module):
    return torch.cat([p.detach().flatten() for p in module.policy.parameters()])


def test_vocab_path_gives_the_same_update_as_the_logits_path():
    """forward_kl(beta=0) switches the trainer to the vocab-view forward; the gradient of the same
    surrogate must not change (the view back-propagates analytically, chunk by chunk)."""
    plain = tiny_module(objective="grpo", update=dict(micro_batch_size=6))
    viewed = tiny_module(objective=["grpo", {"forward_kl": {"beta": 0.0}}], update=dict(micro_batch_size=6))
    rollout = synthetic_rollout(plain)
    before = _weights(plain)
    a = plain.update_on_rollout(rollout, synthetic_rewards(16))
    b = viewed.update_on_rollout(rollout, synthetic_rewards(16))
    assert (_weights(plain) - before).abs().max() > 1e-3
    assert torch.allclose(_weights(plain), _weights(viewed), atol=2e-5, rtol=0)
    assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-5)


def _perturbed(ratio=None, **perturbation):
    return [{"PerturbedContext": {"perturbation": dict(perturbation, **({} if ratio is None else {"ratio": ratio}))}}]


def test_perceptual_inputs():
    objective = ["grpo", {"perception_kl": {"gamma": 0.01}}]
    module = tiny_module(objective=objective, providers=_perturbed(0.0))
    metrics = module.update_on_rollout(synthetic_rollout(module), synthetic_rewards(16))
    assert metrics["perception/kl"] == pytest.approx(0.0, abs=1e-6)  # nothing masked: same distribution
    module = tiny_module(objective=objective, providers=_perturbed(1.0, span=2))
    provider = _provider(module, PerturbedContext)
    assert provider.perturbation == PromptSpanMask(ratio=1.0, span=2)
    assert provider.needed == {"extras:logp_perturbed"}
    rollout = synthetic_rollout(module)
    ctx = module.context(7)
    logp = provider.batch(ctx, batch_of(rollout), {})["extras:logp_perturbed"]
    assert provider.micro(ctx, batch_of(rollout), torch.arange(4), {}) == {}  # no view needed
    with torch.no_grad():
        direct = perception_forward(module.policy, *_args(rollout), PromptSpanMask(ratio=1.0, span=2),
                                    step=7, row_keys=torch.arange(len(rollout))).logp
    assert torch.equal(logp, direct)
    given = Batch(rollout=rollout, records=[{"prompt": ""}] * len(rollout), extras={"logp_perturbed": direct})
    assert provider.batch(ctx, given, {}) == {}  # given with the batch: not recomputed
    metrics = module.update_on_rollout(rollout, synthetic_rewards(16))
    assert metrics["perception/kl"] > 1e-4
    full = tiny_module(objective=["grpo", {"perception_kl": {"estimator": "full"}}], providers=_perturbed(1.0),
                       update=dict(micro_batch_size=5))
    full_provider = _provider(full, PerturbedContext)
    assert full_provider.needed == {"extras:vocab_perturbed"}
    assert full_provider.batch(full.context(0), batch_of(rollout), {}) == {}  # only the lazy views
    assert full.update_on_rollout(rollout, synthetic_rewards(16))["perception/kl"] > 1e-4
    # the default provider of the slot, with PAPO's default perturbation
    assert _provider(tiny_module(objective=objective), PerturbedContext).perturbation == PromptSpanMask()


def test_perturbed_rows_do_not_depend_on_micro_batching():
    """Each row's mask depends on (seed, step, row index): chunks of 5 rows give the whole batch's values."""
    objective = ["grpo", {"perception_kl": {"gamma": 0.01}}]
    whole = tiny_module(objective=objective, providers=_perturbed(0.5))
    chunked = tiny_module(objective=objective, providers=_perturbed(0.5), update=dict(micro_batch_size=5))
    rollout = synthetic_rollout(whole)
    a = _provider(whole, PerturbedContext).batch(whole.context(3), batch_of(rollout), {})["extras:logp_perturbed"]
    b = _provider(chunked, PerturbedContext).batch(chunked.context(3), batch_of(rollout), {})["extras:logp_perturbed"]
    assert torch.allclose(a, b, atol=1e-6)
    other = _provider(whole, PerturbedContext).batch(whole.context(4), batch_of(rollout), {})["extras:logp_perturbed"]
    assert not torch.equal(a, other)  # another data step draws other masks


@pytest.mark.parametrize("kwargs, match", [
    ({"providers": _perturbed(2.0)}, "PerturbedContext.perturbation: PromptSpanMask.ratio"),
    ({"providers": _perturbed(spam=1)}, "PerturbedContext.perturbation: .*spam"),
    ({"providers": [{"PerturbedContext": {"perturbation": 0.5}}]}, "PerturbedContext.perturbation: expected a mapping"),
    ({"providers": ["PerturbedContxt"]}, r"providers\[0\]: unknown provider 'PerturbedContxt'\. Did you mean 'PerturbedContext'"),
    ({"providers": [{"LpRegProxy": {"tua": 0.1}}]}, r"providers\[0\] LpRegProxy: .*tua"),
    ({"objective": ["grpo", {"lp_reg": {"tau": 0.1}}, {"lp_reg": {"tau": 0.2}}]}, "disagree"),
    ({"providers": ["LpRegProxy"]}, "LpRegProxy: no term gives tau / mode"),
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
    main(["fit", "--config", str(path), "--trainer.max_steps=3", "--model.warmup.steps=1",
          "--data.prompts_per_step=4", "--model.rollout.group_size=4", "--data.eval_size=4", "--model.evaluation.samples=2",
          "--model.evaluation.k=[1, 2]", "--model.policy.tiny_model={hidden_size: 128, layers: 1, heads: 2, seed: 0}",
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
