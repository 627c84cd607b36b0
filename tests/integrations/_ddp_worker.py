"""Worker for test_trl.test_two_processes (run under torchrun, 2 CPU processes, gloo).

Each rank generates its own completions (TRL's GRPOTrainer splits the prompts across processes),
then checks: (1) rlobj's advantages, computed from the rewards TRL gathers across processes, equal
TRL's own (group z-score, eps 1e-4) on this rank's rows; (2) TRL's dapo / grpo loss and rlobj's
token_mean / seq_mean_token_mean loss agree on this rank's micro-batch, in value and in the
DDP-averaged gradient. Prints one line per check; exits non-zero on a mismatch.
"""

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import tiny_model, tokenizer_and_dataset  # noqa: E402
from _trl_setup import grpo_config, make_trainer, trl  # noqa: E402  (skips collection without TRL)

from rlobj import clip_ratio, group_zscore, seq_mean_token_mean, token_mean  # noqa: E402
from rlobj.integrations.trl import RlobjGRPOTrainer  # noqa: E402


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write per line (two processes share the pipe)
    sys.stdout.flush()


def main():
    tmp = Path(tempfile.mkdtemp())
    tokenizer, dataset = tokenizer_and_dataset()
    model = tiny_model(tokenizer, torch.float64)
    config = grpo_config(tmp, per_device_train_batch_size=4)
    peer = make_trainer(trl.GRPOTrainer, tmp, model, tokenizer, dataset, config=config)
    rank = peer.accelerator.process_index
    assert peer.accelerator.num_processes == 2, peer.accelerator.num_processes
    ours = make_trainer(RlobjGRPOTrainer, tmp, model, tokenizer, dataset, config=config,
                      objective=group_zscore(eps=1e-4) >> clip_ratio() >> token_mean())
    batch = next(iter(peer.get_train_dataloader()))
    torch.manual_seed(11 + rank)
    peer_inputs = peer._generate_and_score_completions(batch)
    torch.manual_seed(11 + rank)
    ours_inputs = ours._generate_and_score_completions(batch)
    assert torch.equal(peer_inputs["completion_ids"], ours_inputs["completion_ids"])
    mask = ours_inputs["completion_mask"].bool()
    expected = torch.where(mask, peer_inputs["advantages"].double()[:, None], 0.0)
    error = float((expected - ours_inputs["advantages"]).abs().max())
    _say(f"rank {rank}: advantages max|dA| {error:.2e}")
    ok = error < 1e-6 and float(expected.abs().max()) > 0
    with torch.no_grad():
        logp = ours.rlobj_state(ours.model, ours_inputs).logp
    noise = 0.3 * torch.randn(mask.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3 + rank))
    ours_inputs["old_per_token_logps"] = torch.where(mask, logp + noise, 0.0)
    shared = {k: v for k, v in ours_inputs.items() if not k.startswith("rlobj:")}
    for loss_type, aggregation in (("dapo", token_mean()), ("grpo", seq_mean_token_mean())):
        peer_cfg = grpo_config(tmp, per_device_train_batch_size=4, loss_type=loss_type)
        peer_k = make_trainer(trl.GRPOTrainer, tmp, model, tokenizer, dataset, config=peer_cfg)
        ours_k = make_trainer(RlobjGRPOTrainer, tmp, model, tokenizer, dataset, config=peer_cfg,
                            objective=clip_ratio() >> aggregation)
        wrapped = peer_k.accelerator.prepare_model(model)  # DDP: gradients averaged over the 2 ranks
        results = []
        for trainer, inputs in ((peer_k, shared), (ours_k, ours_inputs)):
            model.zero_grad(set_to_none=True)
            loss = trainer._compute_loss(wrapped, inputs)
            loss.backward()
            grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            results.append((loss.detach(), grads))
        loss_error = float((results[0][0] - results[1][0]).abs())
        grad_error = float((results[0][1] - results[1][1]).abs().max())
        _say(f"rank {rank}: {loss_type} 2 processes max|dloss| {loss_error:.2e} max|dgrad| {grad_error:.2e}")
        ok = ok and loss_error < 1e-6 and grad_error < 1e-6 and float(results[0][1].abs().max()) > 0
    # Tear the process group down before exiting: left to interpreter shutdown, gloo's threads
    # were once destroyed while joinable ("terminate called without an active exception", SIGABRT
    # on rank 0 after every check had printed), failing a run whose results were all correct.
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
