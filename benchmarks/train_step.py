"""One RL update at Qwen's vocabulary: rlobj chunked (default) vs rlobj full logits vs TRL's GRPOTrainer.

Builds a random Qwen2-shaped model with V = 151,936 (small hidden size and depth so a run takes
about a minute on a CPU), one fixed rollout batch, and runs one RL update (forward, backward,
gradient clipping, AdamW step; GRPO's clipped surrogate with per-sequence token means, entropy
computed as a metric) side by side in one process:

  (a) chunked  rlobj's default (``policy.logits: chunked`` through ``RLModule.update_on_rollout``):
               log-probs and entropy from hidden states and the output projection, chunk by chunk;
  (b) full     ``policy.logits: full``: the model's whole ``[tokens, vocab]`` logits;
  (c) trl      TRL's ``GRPOTrainer.compute_loss`` on the same model and batch (its own forward
               through the fused LM head it patches onto the model; see ``_trl_row.py``);
  (d) packed   (a) with ``update.packing: true``: the rows as one sequence without padding
               (the line above the table gives the positions each forward runs, padded and packed).

Prints, per row, the peak of live tensor bytes allocated during the update, gradients included
(the weights and the optimizer state exist before it; traced with a dispatch mode on the CPU, ``torch.cuda.max_memory_allocated`` on
CUDA), the largest single allocation and the median wall time of ``--repeats`` updates, and the
ratios of each row to (c). Not part of the test suite. Row (c) needs TRL, which lives in the peers
environment (``bash scripts/test_peers.sh`` builds ``.venv-peers``); elsewhere the script says so
and prints rows (a) and (b) only:

    PYTHONPATH=. .venv-peers/bin/python benchmarks/train_step.py [--rows 8] [--prompt 64] [--response 192] [--device cuda]
"""

import argparse
import copy
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trl_row import TRLRow, trl_available  # noqa: E402
from vocab_terms import LiveBytes  # noqa: E402

from rlobj.rollout import RolloutBatch, build_tiny_qwen2  # noqa: E402
from rlobj.train import RLModule  # noqa: E402
from rlobj.train.models import Models  # noqa: E402
from rlobj.train.packing import pack_rows  # noqa: E402

VOCAB = 151_936


def make_module(base, logits: str, device: str, packing: bool = False) -> RLModule:
    module = RLModule(objective="grpo", policy={"logits": logits}, update={"grad_clip": 1.0, "packing": packing},
                      optimizer=functools.partial(torch.optim.AdamW, lr=1e-4, weight_decay=0.0))
    module.build()  # the tiny character model; replaced by the big-vocabulary one below
    module.policy = copy.deepcopy(base).to(device).train()
    module.models = Models(module.policy, temperature=1.0, logits=logits, packing=packing)
    return module


def make_batch(rows: int, prompt: int, response: int, device: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(3, VOCAB, (rows, prompt), generator=generator)
    lengths = torch.randint(response // 2, response + 1, (rows,), generator=generator)
    response_mask = torch.arange(response)[None, :] < lengths[:, None]
    response_ids = torch.where(response_mask, torch.randint(3, VOCAB, (rows, response), generator=generator), 0)
    rollout = RolloutBatch(prompt_ids=prompt_ids, prompt_mask=torch.ones(rows, prompt, dtype=torch.bool),
                           response_ids=response_ids, response_mask=response_mask,
                           logp_rollout=torch.zeros(rows, response), group_ids=torch.arange(rows) // 4,
                           truncated=torch.zeros(rows, dtype=torch.bool), finish_reasons=("stop",) * rows)
    rewards = torch.randint(0, 2, (rows,), generator=generator).float()
    return rollout.to(device), rewards.to(device)


def rlobj_update(module, rollout, rewards):
    """One update of the trainer; the batch is on-policy (one epoch, one mini-batch), so logp_old is
    the detached log-probs of the training forward itself, as in TRL's row: one forward per update."""
    return module.update_on_rollout(rollout, rewards)["grad_norm"]


def measure(one_update, device: str, repeats: int):
    first_norm = one_update()  # warm-up: optimizer state exists from here on
    if device == "cpu":
        with LiveBytes() as tracer:
            one_update()
        peak, largest = tracer.summary([])
        del tracer
    else:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        one_update()
        torch.cuda.synchronize()
        peak, largest = torch.cuda.max_memory_allocated() - before, float("nan")
    times = []
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        one_update()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return peak, largest, statistics.median(times), first_norm


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--response", type=int, default=192)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    torch.manual_seed(0)
    base = build_tiny_qwen2(vocab_size=VOCAB, hidden_size=args.hidden, layers=args.layers, heads=2, seed=0,
                            max_position_embeddings=args.prompt + args.response + 8)
    rollout, rewards = make_batch(args.rows, args.prompt, args.response, args.device)
    tokens = int(rollout.response_mask.sum())
    print(f"one RL update (grpo, AdamW): V={VOCAB}, hidden {args.hidden}, {args.layers} layers, {args.rows} rows "
          f"x ({args.prompt} prompt + {args.response} response) tokens, {tokens} response tokens; "
          f"device {args.device}; float32 [tokens, vocab] = {tokens * VOCAB * 4 / 2**20:.0f} MiB", flush=True)
    state_mib = 3 * sum(p.nbytes for p in base.parameters()) / 2**20  # weights + AdamW's two moments
    rows = {}
    for name, logits in (("(a) chunked", "chunked"), ("(b) full", "full")):
        module = make_module(base, logits, args.device)
        rows[name] = measure(functools.partial(rlobj_update, module, rollout, rewards), args.device, args.repeats)
        del module
    missing = trl_available()
    if missing is None:
        with tempfile.TemporaryDirectory() as output_dir:
            peer = TRLRow(base, rollout, rewards, args.device, output_dir)
            rows["(c) trl"] = measure(peer.update, args.device, args.repeats)
            del peer
    module = make_module(base, "chunked", args.device, packing=True)
    rows["(d) packed"] = measure(functools.partial(rlobj_update, module, rollout, rewards), args.device, args.repeats)
    del module
    packed = pack_rows(rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.response_mask)
    print(f"positions per forward: padded {packed.padded_tokens}, packed {packed.tokens} "
          f"({packed.tokens / packed.padded_tokens:.3f}x)")
    print(f"peak: live bytes allocated during the update (gradients included; the weights and the "
          f"AdamW state, {state_mib:.0f} MiB, exist before it)")
    print("grad norm: of the first update (same weights and batch in every row: the rows compute the same update)")
    print(f"{'row':<12} {'peak MiB':>10} {'largest MiB':>12} {'time s':>8} {'grad norm':>10}")
    for name, (peak, largest, seconds, norm) in rows.items():
        print(f"{name:<12} {peak / 2**20:>10.1f} {largest / 2**20:>12.1f} {seconds:>8.2f} {norm:>10.6f}")
    if missing is not None:
        print(f"row (c) not measured: {missing}")
        reference = rows["(b) full"]
        for name in ("(a) chunked", "(d) packed"):
            print(f"{name} / (b) full: peak {rows[name][0] / reference[0]:.3f}x, "
                  f"time {rows[name][2] / reference[2]:.3f}x")
        return
    reference = rows["(c) trl"]
    for name in ("(a) chunked", "(b) full", "(d) packed"):
        peak, _, seconds, _ = rows[name]
        print(f"{name} / (c) trl: peak {peak / reference[0]:.3f}x, time {seconds / reference[2]:.3f}x")
    peak, _, seconds, _ = rows["(a) chunked"]
    met = peak <= 0.2 * reference[0], seconds <= 0.5 * reference[2]
    print(f"targets (a) <= 0.2x (c) peak: {'met' if met[0] else 'NOT met'}; "
          f"(a) <= 0.5x (c) time: {'met' if met[1] else 'NOT met'}")

if __name__ == "__main__":
    main()
