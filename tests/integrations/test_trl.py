"""rlobj inside TRL's GRPOTrainer (real TRL 1.16 on the CPU, tiny local model, no download).

Parity: for each TRL setting the same micro-batch goes through TRL's own ``_compute_loss`` and
through :class:`RlobjGRPOTrainer` with the equivalent chain, in float64; loss and every
parameter gradient must agree within 1e-6 (``PARITY`` collects the table printed at the end).
"""

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

trl = pytest.importorskip("trl")

from _tiny import tiny_model, tokenizer_and_dataset  # noqa: E402
from _trl_setup import MAX_LEN, grpo_config, make_trainer  # noqa: E402

from rlobj import (  # noqa: E402
    clip_ratio,
    clipped_weight_pg,
    constant_normalizer,
    forward_kl,
    group_zscore,
    grpo,
    k3_kl,
    lp_reg,
    seq_mean_token_mean,
    sequence_clip,
    soft_gate,
    token_mean,
    top_entropy_mask,
    truncated_mask,
)
from rlobj.integrations.trl import RlobjGRPOTrainer  # noqa: E402
from rlobj.ops.errors import RlobjInputError  # noqa: E402

PARITY: list[tuple[str, str, float, float]] = []
@pytest.fixture(scope="module")
def float64_setup(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trl64")
    tokenizer, dataset = tokenizer_and_dataset()
    model = tiny_model(tokenizer, torch.float64)
    model.save_pretrained(tmp_path / "model")  # TRL builds its reference (beta > 0) from the path
    model.config._name_or_path = str(tmp_path / "model")
    trainer = make_trainer(RlobjGRPOTrainer, tmp_path, model, tokenizer, dataset,
                       objective=group_zscore(eps=1e-4) >> clip_ratio() >> token_mean())
    torch.manual_seed(0)
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = trainer._generate_and_score_completions(batch)
    # perturb the old log-probs so that ratios leave 1 and clipping acts
    mask = inputs["completion_mask"].bool()
    with torch.no_grad():
        state = trainer.rlobj_state(trainer.model, inputs)
    noise = 0.3 * torch.randn(mask.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inputs["old_per_token_logps"] = torch.where(mask, state.logp + noise, 0.0)
    inputs["ref_per_token_logps"] = torch.where(mask, state.logp - noise.flip(0), 0.0)
    return tmp_path, tokenizer, dataset, model, trainer, inputs


def _loss_and_grad(trainer, model, inputs):
    model.zero_grad(set_to_none=True)
    model.train()
    loss = trainer._compute_loss(model, inputs)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.detach(), grads


SETTINGS = [
    ("loss_type=grpo", {"loss_type": "grpo"}, clip_ratio() >> seq_mean_token_mean(), {}),
    ("loss_type=bnpo", {"loss_type": "bnpo"}, clip_ratio() >> token_mean(), {"normalizer": "micro_batch"}),
    ("loss_type=dr_grpo", {"loss_type": "dr_grpo"}, clip_ratio() >> constant_normalizer(MAX_LEN), {}),
    ("loss_type=dapo", {"loss_type": "dapo"}, clip_ratio() >> token_mean(), {}),
    ("dapo, gradient_accumulation_steps=2", {"loss_type": "dapo", "gradient_accumulation_steps": 2},
     clip_ratio() >> token_mean(), {}),
    ("dapo, grad. accum. 2, steps_per_generation=4", {"loss_type": "dapo", "gradient_accumulation_steps": 2,
     "steps_per_generation": 4}, clip_ratio() >> token_mean(), {}),
    ("grpo, gradient_accumulation_steps=2", {"loss_type": "grpo", "gradient_accumulation_steps": 2},
     clip_ratio() >> seq_mean_token_mean(), {}),
    ("dr_grpo, gradient_accumulation_steps=2", {"loss_type": "dr_grpo", "gradient_accumulation_steps": 2},
     clip_ratio() >> constant_normalizer(MAX_LEN), {}),
    ("dapo, epsilon_high=0.28", {"loss_type": "dapo", "epsilon_high": 0.28},
     clip_ratio(eps_low=0.2, eps_high=0.28) >> token_mean(), {}),
    ("dapo, beta=0.04", {"loss_type": "dapo", "beta": 0.04}, clip_ratio() >> token_mean() >> k3_kl(0.04, clamp=False, bias_correction=True), {}),
    ("dapo, beta=0.04, use_bias_correction_kl=False", {"loss_type": "dapo", "beta": 0.04,
     "use_bias_correction_kl": False}, clip_ratio() >> token_mean() >> k3_kl(0.04, clamp=False), {}),
    ("grpo, beta=0.04", {"loss_type": "grpo", "beta": 0.04},
     clip_ratio() >> seq_mean_token_mean() >> k3_kl(0.04, clamp=False, bias_correction=True), {}),
    ("dapo, top_entropy_quantile=0.5", {"loss_type": "dapo", "top_entropy_quantile": 0.5},
     clip_ratio() >> top_entropy_mask(rho=0.5, normalize="all") >> token_mean(), {}),
    ("loss_type=cispo, epsilon_high=5", {"loss_type": "cispo", "epsilon_high": 5.0},
     clipped_weight_pg(eps_low=1.0, eps_high=4.0) >> token_mean(), {}),
    ("loss_type=sapo", {"loss_type": "sapo"}, soft_gate(tau_pos=1.0, tau_neg=1.05) >> seq_mean_token_mean(), {}),
    ("GSPO: importance_sampling_level=sequence, grpo", {"loss_type": "grpo", "importance_sampling_level": "sequence",
     "epsilon": 3e-4, "epsilon_high": 4e-4}, sequence_clip(eps_low=3e-4, eps_high=4e-4) >> seq_mean_token_mean(), {}),
]


@pytest.mark.parametrize("label, trl_args, rlobj_chain, rlobj_args", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_loss_and_gradient_match_trl(float64_setup, label, trl_args, rlobj_chain, rlobj_args):
    tmp_path, tokenizer, dataset, model, _, inputs = float64_setup
    peer = make_trainer(trl.GRPOTrainer, tmp_path, model, tokenizer, dataset, config=grpo_config(tmp_path, **trl_args))
    ours = make_trainer(RlobjGRPOTrainer, tmp_path, model, tokenizer, dataset, config=grpo_config(tmp_path, **trl_args),
                    objective=rlobj_chain, **rlobj_args)
    peer_inputs = {k: v for k, v in inputs.items() if not k.startswith("rlobj:")}
    if "top_entropy_quantile" in trl_args:  # same selected tokens (TRL: quantile threshold, rlobj: top k)
        with torch.no_grad():
            entropy = ours.rlobj_state(model, inputs).entropy
        mask = inputs["completion_mask"].bool()
        trl_mask = peer.get_high_entropy_mask(entropy, mask, 1 - trl_args["top_entropy_quantile"])
        assert int(trl_mask.sum()) == math.ceil(0.5 * int(mask.sum()))
    loss_peer, grad_peer = _loss_and_grad(peer, model, peer_inputs)
    loss_ours, grad_ours = _loss_and_grad(ours, model, inputs)
    loss_error = float((loss_peer - loss_ours).abs())
    grad_error = float((grad_peer - grad_ours).abs().max())
    PARITY.append((label, repr(rlobj_chain), loss_error, grad_error))
    print(f"PARITY TRL | {label} | loss {float(loss_peer):.6f} | max|dloss| {loss_error:.2e} | "
          f"max|dgrad| {grad_error:.2e}")
    assert float(grad_peer.abs().max()) > 0, "vacuous check: TRL's gradient is zero"
    assert loss_error < 1e-6 and grad_error < 1e-6


@pytest.mark.parametrize("loss_type, aggregation", [("dapo", token_mean()), ("grpo", seq_mean_token_mean()),
                                                   ("bnpo", token_mean())])
def test_mask_truncated_completions_matches_trl(float64_setup, loss_type, aggregation):
    """TRL's mask_truncated_completions=True (truncated rows leave the mask and the token count) is
    truncated_mask(normalizer="trl") on the unmasked batch."""
    tmp_path, tokenizer, dataset, model, _, inputs = float64_setup
    truncated = inputs["rlobj:extras:truncated"]
    assert 0 < int(truncated.sum()) < len(truncated)
    config = grpo_config(tmp_path, loss_type=loss_type, mask_truncated_completions=True)
    peer = make_trainer(trl.GRPOTrainer, tmp_path, model, tokenizer, dataset, config=config)
    peer_inputs = {k: v for k, v in inputs.items() if not k.startswith("rlobj:")}
    peer_inputs["completion_mask"] = inputs["completion_mask"] * (~truncated)[:, None].int()
    peer_inputs["num_items_in_batch"] = peer_inputs["completion_mask"].sum()
    ours = make_trainer(RlobjGRPOTrainer, tmp_path, model, tokenizer, dataset, config=grpo_config(tmp_path),
                    objective=clip_ratio() >> truncated_mask(normalizer="trl") >> aggregation,
                    normalizer="micro_batch" if loss_type == "bnpo" else "global")
    loss_peer, grad_peer = _loss_and_grad(peer, model, peer_inputs)
    loss_ours, grad_ours = _loss_and_grad(ours, model, inputs)
    loss_error, grad_error = float((loss_peer - loss_ours).abs()), float((grad_peer - grad_ours).abs().max())
    print(f"PARITY TRL | {loss_type}, mask_truncated_completions=True | loss {float(loss_peer):.6f} | "
          f"max|dloss| {loss_error:.2e} | max|dgrad| {grad_error:.2e}")
    assert float(grad_peer.abs().max()) > 0 and loss_error < 1e-6 and grad_error < 1e-6


def test_advantages_match_trl(float64_setup):
    """TRL's default advantages (group z-score, std + 1e-4) equal rlobj's group_zscore(eps=1e-4)."""
    tmp_path, tokenizer, dataset, model, ours, _ = float64_setup
    peer = make_trainer(trl.GRPOTrainer, tmp_path, model, tokenizer, dataset)
    batch = next(iter(peer.get_train_dataloader()))
    torch.manual_seed(5)
    peer_out = peer._generate_and_score_completions(batch)
    torch.manual_seed(5)
    ours_out = ours._generate_and_score_completions(batch)
    assert torch.equal(peer_out["completion_ids"], ours_out["completion_ids"])
    mask = ours_out["completion_mask"].bool()
    expected = peer_out["advantages"].double()[:, None].expand_as(mask)
    error = float((torch.where(mask, expected, 0.0) - ours_out["advantages"]).abs().max())
    print(f"PARITY TRL | advantages, scale_rewards=group | max|dA| {error:.2e}")
    assert float(expected.abs().max()) > 0 and error < 1e-6


def test_chain_without_advantage_term_keeps_trl_advantages(float64_setup):
    tmp_path, tokenizer, dataset, model, _, _ = float64_setup
    peer = make_trainer(trl.GRPOTrainer, tmp_path, model, tokenizer, dataset)
    ours = make_trainer(RlobjGRPOTrainer, tmp_path, model, tokenizer, dataset, objective=clip_ratio() >> token_mean())
    batch = next(iter(peer.get_train_dataloader()))
    torch.manual_seed(7)
    expected = peer._generate_and_score_completions(batch)["advantages"]
    torch.manual_seed(7)
    got = ours._generate_and_score_completions(batch)["advantages"]
    assert float(expected.abs().max()) > 0 and torch.equal(expected, got)


def test_composed_objective_trains_inside_trl(tmp_path):
    """grpo >> lp_reg(tau) >> forward_kl(beta) trains a few steps inside TRL; metrics reach TRL's logs."""
    tokenizer, dataset = tokenizer_and_dataset()
    model = tiny_model(tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    # the random tiny model's next-token distributions are near uniform: at Lp-Reg's tau = 0.02
    # every token stays in the proxy (= the old policy) and nothing is selected; tau = 0.5 filters
    objective = grpo.replace(group_zscore, group_zscore(eps=1e-4)) >> lp_reg(tau=0.5, rho=0.5) >> forward_kl(0.01)
    trainer = make_trainer(RlobjGRPOTrainer, tmp_path, model, tokenizer, dataset,
                           config=grpo_config(tmp_path, max_steps=3), objective=objective)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "rlobj/loss" in entry]
    for entry in logs:
        print("TRL+rlobj step", {k: round(v, 5) for k, v in entry.items()
                                 if k in ("step", "reward", "rlobj/loss", "rlobj/loss/policy",
                                          "rlobj/loss/kl_ref_forward_full", "rlobj/kl/ref_forward_full",
                                          "rlobj/lp_reg/selected_count", "rlobj/lp_reg/penalty")})
    assert len(logs) == 3
    assert all(math.isfinite(entry["rlobj/loss"]) for entry in logs)
    assert "rlobj/loss/kl_ref_forward_full" in logs[-1] and logs[-1]["rlobj/loss/kl_ref_forward_full"] > 0
    assert max(entry["rlobj/lp_reg/selected_count"] for entry in logs) > 0  # lp_reg acted
    assert max(entry["rlobj/lp_reg/penalty"] for entry in logs) > 0
    moved = max(float((p.detach() - q).abs().max()) for p, q in zip(model.parameters(), before))
    assert moved > 0


def test_two_processes_match_trl():
    """Under torchrun (2 CPU processes, gloo, DDP; ``--standalone`` picks a free port): advantages from the rewards TRL gathers across
    processes, and the dapo / grpo loss and DDP-averaged gradient, equal TRL's on each rank."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None, "torchrun missing from the peers' environment"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(Path(__file__).with_name("_ddp_worker.py"))],
                          env=env, capture_output=True, text=True, timeout=600)
    number = r"\d\.\d\de[-+]\d\d"  # the workers' lines can interleave: match each check exactly
    checks = re.findall(rf"rank \d: (?:advantages max\|dA\| {number}|(?:dapo|grpo) 2 processes max\|dloss\| "
                        rf"{number} max\|dgrad\| {number})", done.stdout)
    print("\n".join(checks))
    assert done.returncode == 0, done.stderr[-4000:]
    assert len(checks) == 6  # both ranks ran all three checks (lines can interleave)


def test_bad_arguments_are_refused(tmp_path):
    tokenizer, dataset = tokenizer_and_dataset()
    model = tiny_model(tokenizer)
    with pytest.raises(RlobjInputError, match="normalizer"):
        make_trainer(RlobjGRPOTrainer, tmp_path, model, tokenizer, dataset, objective=grpo, normalizer="tokens")
    with pytest.raises(RlobjInputError, match="objective"):
        make_trainer(RlobjGRPOTrainer, tmp_path, model, tokenizer, dataset, objective="grpo")
