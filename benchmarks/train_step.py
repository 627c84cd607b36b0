"""One RL update of the trainer at Qwen's vocabulary: chunked log-probs (the default) vs full logits.

Builds a random Qwen2-shaped model with V = 151,936 (small hidden size and depth so a run takes
about a minute on a CPU), one fixed rollout batch, and runs one RL update (forward, backward,
optimizer step; ``grpo``, log-probs and entropy as the trainer computes them) through
``RLModule.update_on_rollout`` twice, side by side in one process:

  chunked  ``policy.logits: chunked`` (the default for models with a decoder and an output layer):
           log-probs and entropy from hidden states and the output projection, chunk by chunk;
  full     ``policy.logits: full``: the model's whole ``[tokens, vocab]`` logits.

Prints, per row, the peak of live tensor bytes allocated during the update, gradients included
(the weights and the optimizer state exist before it; traced with a dispatch mode on the CPU, ``torch.cuda.max_memory_allocated`` on
CUDA), the largest single allocation and the median wall time of ``--repeats`` updates, and the
ratios chunked / full. Not part of the test suite; TRL's row (issue 12's third row) is not
measured here.

    python benchmarks/train_step.py [--rows 8] [--prompt 64] [--response 192] [--device cuda]
"""

import argparse
import copy
import functools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vocab_terms import LiveBytes  # noqa: E402

from rlobj.rollout import RolloutBatch, build_tiny_qwen2  # noqa: E402
from rlobj.train import RLModule  # noqa: E402
from rlobj.train.models import Models  # noqa: E402

VOCAB = 151_936


def make_module(base, logits: str, device: str) -> RLModule:
    module = RLModule(objective="grpo", policy={"logits": logits}, update={"grad_clip": 1.0},
                      optimizer=functools.partial(torch.optim.AdamW, lr=1e-4, weight_decay=0.0))
    module.build()  # the tiny character model; replaced by the big-vocabulary one below
    module.policy = copy.deepcopy(base).to(device).train()
    module.models = Models(module.policy, temperature=1.0, logits=logits)
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


def state_bytes(module) -> int:
    total = sum(p.nbytes for p in module.policy.parameters())
    total += sum(p.grad.nbytes for p in module.policy.parameters() if p.grad is not None)
    for state in module._optimizer().state.values():
        total += sum(v.nbytes for v in state.values() if torch.is_tensor(v))
    return total


def one_update(module, rollout, rewards):
    # off-policy rollout log-probs (zeros): the update computes logp_old itself, as a PPO epoch does
    module.update_on_rollout(rollout, rewards)


def measure(module, rollout, rewards, device: str, repeats: int):
    one_update(module, rollout, rewards)  # warm-up: optimizer state exists from here on
    if device == "cpu":
        with LiveBytes() as tracer:
            one_update(module, rollout, rewards)
        peak, largest = tracer.summary([])
        del tracer
    else:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        one_update(module, rollout, rewards)
        torch.cuda.synchronize()
        peak, largest = torch.cuda.max_memory_allocated() - before, float("nan")
    times = []
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        one_update(module, rollout, rewards)
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return peak, largest, statistics.median(times)


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
    rows = {}
    for logits in ("chunked", "full"):
        module = make_module(base, logits, args.device)
        peak, largest, seconds = measure(module, rollout, rewards, args.device, args.repeats)
        rows[logits] = (peak, largest, seconds, state_bytes(module))
    print(f"peak: live bytes allocated during the update (gradients included; the weights and the "
          f"optimizer state, {rows['full'][3] / 2**20:.0f} MiB with one step's gradients, exist before it)")
    print(f"{'row':<8} {'peak MiB':>10} {'largest MiB':>12} {'time s':>8}")
    for name, (peak, largest, seconds, _) in rows.items():
        print(f"{name:<8} {peak / 2**20:>10.1f} {largest / 2**20:>12.1f} {seconds:>8.2f}")
    chunked, full = rows["chunked"], rows["full"]
    print(f"chunked / full: peak {chunked[0] / full[0]:.3f}x, time {chunked[2] / full[2]:.3f}x")


if __name__ == "__main__":
    main()
