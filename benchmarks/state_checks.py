"""Cost of the input checks added to ``State.from_batch`` (finite extras, reward range, list
conversion) next to one objective step on the same batch, measured side by side in one run.

    python benchmarks/state_checks.py [--batch 64] [--seq 1024]
"""

import argparse
import statistics
import time

import torch

from rlobj import grpo, truncated_is
from rlobj.algebra import Objective
from rlobj.algebra.state import TOKEN_FIELDS, _as_tensor, _check_reward_range
from rlobj.ops.errors import check_finite


def _median_seconds(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPUs: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch, seq = args.batch, args.seq
    logp_old = -torch.rand(batch, seq)
    fields = dict(logp_old=logp_old, mask=torch.rand(batch, seq) > 0.1,
                  rewards=torch.rand(batch), group_ids=torch.arange(batch) // 8,
                  extras={"logp_rollout": logp_old - 0.01 * torch.rand(batch, seq)})
    objective = Objective(grpo >> truncated_is())

    def step():
        logp = logp_old.clone().requires_grad_(True)
        objective(logp=logp, **fields).loss.backward()

    def added_checks():
        for name in (*TOKEN_FIELDS, "mask", "rewards", "group_ids"):
            _as_tensor(name, fields.get(name), logp_old)
        _check_reward_range(fields["rewards"], logp_old.dtype)
        for name, value in fields["extras"].items():
            check_finite(f"extras[{name!r}]", value, where=fields["mask"])

    full = _median_seconds(step, args.repeats)
    checks = _median_seconds(added_checks, args.repeats)
    print(f"batch {batch} x {seq}, CPU, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"objective step (forward + backward): {full * 1e3:.2f} ms")
    print(f"added input checks:                  {checks * 1e3:.3f} ms")
    print(f"ratio checks / step:                 {checks / full:.4f}")


if __name__ == "__main__":
    main()
