"""Training-state memory of full fine-tuning vs LoRA, measured from the tensors after one RL update.

Builds a random Qwen2-shaped model (default hidden 512, 8 layers, V = 32,768), runs one RL update
of ``grpo >> k3_kl`` (so the reference exists) with AdamW, then counts the bytes of distinct
tensor storages held by: the policy's weights, their gradients (before the next zero_grad; the
trainer sets them to None after each step, so this is the peak within a step), the optimizer
state, and the reference. Full fine-tuning keeps a frozen copy of the policy as reference; LoRA
reads the reference from the same weights with the adapters off.

    python benchmarks/lora_memory.py [--hidden 512] [--layers 8] [--vocab 32768] [--r 16]
"""

import argparse
import functools

import torch

from rlobj.rollout import RolloutBatch, build_tiny_qwen2
from rlobj.train import RLModule
from rlobj.train.adapters import AdaptersOff


def _bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


def measure(args, lora: bool) -> dict:
    module = RLModule(objective=["grpo", {"k3_kl": {"beta": 0.01}}],
                      policy={"lora": {"r": args.r, "alpha": 2 * args.r}} if lora else {},
                      optimizer=functools.partial(torch.optim.AdamW, lr=1e-5, weight_decay=0.0))
    module.build()
    base = build_tiny_qwen2(vocab_size=args.vocab, hidden_size=args.hidden, layers=args.layers, heads=8,
                            kv_heads=2, seed=0)
    if lora:
        from rlobj.train.adapters import apply_lora

        base = apply_lora(base, {"r": args.r, "alpha": 2 * args.r})
    module.policy = base.train()
    from rlobj.train.models import Models

    module.models = Models(module.policy, reference_factory=(lambda: AdaptersOff(base)) if lora else None)
    generator = torch.Generator().manual_seed(0)
    rows, length = 8, 32
    rollout = RolloutBatch(prompt_ids=torch.randint(3, args.vocab, (rows, 8), generator=generator),
                           prompt_mask=torch.ones(rows, 8, dtype=torch.bool),
                           response_ids=torch.randint(3, args.vocab, (rows, length), generator=generator),
                           response_mask=torch.ones(rows, length, dtype=torch.bool),
                           logp_rollout=torch.zeros(rows, length), group_ids=torch.arange(rows) // 4,
                           truncated=torch.zeros(rows, dtype=torch.bool), finish_reasons=("stop",) * rows)
    # keep the gradients of the step for counting: the trainer frees them after optimizer.step()
    kept = {}
    optimizer = module._optimizer()
    step = optimizer.step

    def counting_step(*a, **k):
        kept["grads"] = _bytes(p.grad for p in module.policy.parameters())
        return step(*a, **k)

    optimizer.step = counting_step
    module.update_on_rollout(rollout, torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]))
    weights = _bytes(module.policy.parameters())
    states = _bytes(v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    reference = module.models.reference
    ref_bytes = 0 if isinstance(reference, AdaptersOff) else _bytes(reference.parameters())
    trainable = sum(p.numel() for p in module.policy.parameters() if p.requires_grad)
    return {"weights": weights, "grads": kept["grads"], "optimizer": states, "reference": ref_bytes,
            "trainable": trainable}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--r", type=int, default=16)
    args = parser.parse_args(argv)
    rows = {"full": measure(args, lora=False), f"lora r={args.r}": measure(args, lora=True)}
    print(f"random Qwen2-shaped model: hidden {args.hidden}, {args.layers} layers, V={args.vocab}; float32; "
          f"one RL update of grpo >> k3_kl with AdamW")
    print(f"{'row':<12} {'trainable':>12} {'weights MiB':>12} {'grads MiB':>10} {'AdamW MiB':>10} "
          f"{'reference MiB':>14} {'total MiB':>10}")
    for name, row in rows.items():
        total = row["weights"] + row["grads"] + row["optimizer"] + row["reference"]
        print(f"{name:<12} {row['trainable']:>12,} {row['weights'] / 2**20:>12.1f} {row['grads'] / 2**20:>10.1f} "
              f"{row['optimizer'] / 2**20:>10.1f} {row['reference'] / 2**20:>14.1f} {total / 2**20:>10.1f}")
    full, lora = (sum(v for k, v in r.items() if k != "trainable") for r in rows.values())
    print(f"lora / full: {lora / full:.3f}x")


if __name__ == "__main__":
    main()
