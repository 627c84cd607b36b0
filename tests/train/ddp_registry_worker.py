"""Script run by test_ddp_registry.py: every registered objective, one update, on 1 or 2 gloo ranks.

``python ddp_registry_worker.py WORLD OUT [NAME ...]``: WORLD processes (gloo, CPU) build the
same float64 tiny policy and the same global scored batch (5 groups of 5, uneven lengths; rank 0
holds 3 whole groups, rank 1 two, as when each rank samples its own prompts). For each objective
the weights are reset and one update (2 PPO epochs, so the second step sees the state the first
one set, e.g. SIREN's anchor) is taken with SGD (lr 1), gradients averaged over ranks as DDP
does. Rank 0 saves, per objective, 32 fixed random projections of the weight change and its norm.
"""

import os
import sys
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run(rank: int, world: int, out: str, names: list[str], port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [os.path.dirname(here), here]
    from train.pipeline_cases import batch_for, module_for

    from rlobj.train import RLModule

    class AveragedGrads(RLModule):
        def _step(self, lr):
            if world > 1:
                for p in self.policy.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= world
            return super()._step(lr)

    results = {}
    for name in names:
        print(f"[rank {rank}] {name}", file=sys.stderr, flush=True)
        try:
            module = module_for(name, update=dict(micro_batch_size=3, ppo_epochs=2), module_cls=AveragedGrads)
            start = torch.cat([p.detach().flatten() for p in module.policy.parameters()])
            batch = batch_for(module, groups=5, group_size=5)
            groups = batch.rollout.group_ids  # whole groups per rank (3 and 2 groups: uneven rows)
            mine = (groups >= 3) if rank == 1 else (groups < 3) if world > 1 else groups >= 0
            rows = mine.nonzero().squeeze(-1)
            module.update_on_batch(batch.select(rows), module.context(0))
            delta = torch.cat([p.detach().flatten() for p in module.policy.parameters()]) - start
            directions = torch.randn(32, delta.numel(), generator=torch.Generator().manual_seed(0), dtype=delta.dtype)
            results[name] = {"projections": directions @ delta, "norm": delta.norm()}
        except Exception:  # noqa: BLE001 - report per objective, keep going
            results[name] = {"error": traceback.format_exc(limit=3)}
    if rank == 0:
        torch.save(results, out)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    world, out, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    port = 29500 + (os.getpid() % 2000)
    if world == 1:
        run(0, 1, out, names, port)
    else:
        mp.spawn(run, args=(world, out, names, port), nprocs=world, join=True)
