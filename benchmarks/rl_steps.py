"""A few RL steps of the trainer on a random Qwen2-shaped model: generation and update throughput.

Builds a random-init Qwen2-architecture model (default: the 0.5B shape, hidden 896, 24 layers,
14 heads, 2 KV heads, V = 151,936) in float32 master weights with bf16 compute on CUDA (autocast,
what ``trainer.precision: bf16-mixed`` does), puts it in an :class:`~rlobj.train.RLModule`
(``grpo``, HF engine, chunked log-probs), and runs ``--steps`` RL steps on addition prompts
(the random model's answers are scored by their length, so every group has a learning signal).
Prints per step the generation and update tokens/s the trainer logs, and the peak accelerator
memory. On the CPU use small sizes (``--hidden 64 --layers 2``); it is a smoke test there.

    python benchmarks/rl_steps.py --device cuda
"""

import argparse
import functools
import time

import torch

from rlobj.rollout import build_tiny_qwen2
from rlobj.train import AdditionTask, RLModule
from rlobj.train.models import Models

VOCAB = 151_936


def length_reward(completion: str, record: dict) -> float:
    """A dense reward for a random model: the completion's length in characters."""
    return float(len(completion))


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=14)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=4864)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    module = RLModule(objective="grpo", rollout={"group_size": args.group, "max_new_tokens": args.max_new_tokens},
                      update={"micro_batch_size": args.micro_batch, "grad_clip": 1.0}, verifier=length_reward,
                      optimizer=functools.partial(torch.optim.AdamW, lr=1e-6, weight_decay=0.0))
    module.build()  # the character tokenizer; the policy is replaced by the Qwen-shaped one
    policy = build_tiny_qwen2(vocab_size=VOCAB, hidden_size=args.hidden, layers=args.layers, heads=args.heads,
                              kv_heads=args.kv_heads, intermediate_size=args.intermediate, seed=0,
                              eos_token_id=module.tokenizer.eos_token_id, pad_token_id=module.tokenizer.pad_token_id,
                              max_position_embeddings=args.max_new_tokens + 64)
    module.policy = policy.to(args.device).train()
    module.models = Models(module.policy, temperature=1.0, micro_batch_size=args.micro_batch)
    parameters = sum(p.numel() for p in policy.parameters())
    print(f"random Qwen2-shaped model: {parameters / 1e6:.0f}M parameters (float32 master weights"
          f"{', bf16 autocast' if cuda else ''}), V={VOCAB}; {args.prompts} prompts x {args.group} samples, "
          f"max_new_tokens {args.max_new_tokens}, micro-batch {args.micro_batch}; device {args.device}", flush=True)
    task = AdditionTask(seed=0)
    rows = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    for step in range(args.steps):
        records = task.records(step * args.prompts, args.prompts)
        start = time.perf_counter()
        with autocast:
            metrics = module.rl_update(records, step)
        if cuda:
            torch.cuda.synchronize()
        row = {"step": step, "seconds": time.perf_counter() - start,
               "generate_tokens_per_s": metrics["throughput/generate_tokens_per_s"],
               "update_tokens_per_s": metrics["throughput/update_tokens_per_s"],
               "response_length": metrics.get("response/length_mean", float("nan")),
               "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")}
        rows.append(row)
        print(f"step {step}: {row['seconds']:.1f} s, generate {row['generate_tokens_per_s']:.0f} tok/s, update "
              f"{row['update_tokens_per_s']:.0f} tok/s, mean length {row['response_length']:.1f}, "
              f"peak memory {row['peak_gib']:.2f} GiB", flush=True)
    return rows


if __name__ == "__main__":
    main()
