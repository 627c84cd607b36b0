"""Tables of the laws through the trainer, for every registered term and preset.

    python benchmarks/trainer_laws.py [--ddp] [--device cuda] [--entries grpo,dapo,...]

Micro-batch law: one RL update (tiny float64 policy, SGD lr 1, 25 rows in 5 groups of 5 with
uneven lengths) with micro-batches of 25, 13 and 7 rows (K = 1, 2, 4 micro-batches; groups split
across them); the table shows max |weights(K) - weights(K=1)| (= the gradient difference) with
ppo_epochs 1 and 2. ``--ddp`` adds the two-rank table: 2 gloo processes (3 and 2 whole groups)
against 1 process on the same global batch, max difference of 32 random projections of the
weight change, relative to their largest value. The same checks run as tests
(tests/train/test_pipeline_laws.py, tests/train/test_ddp_registry.py).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def micro_batch_table(device: str = "cpu", entries: list[str] | None = None) -> None:
    from train.pipeline_cases import NAMES, law_gaps

    unknown = sorted(set(entries or ()) - set(NAMES))
    if unknown:
        raise SystemExit(f"--entries: unknown entries {unknown}; known: {', '.join(NAMES)}")
    names = entries or NAMES
    print("| entry | K=2, 1 epoch | K=4, 1 epoch | K=2, 2 epochs | K=4, 2 epochs |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name in names:
        one, two = law_gaps(name, 1, device=device), law_gaps(name, 2, device=device)
        worst = max(worst, *one, *two)
        print(f"| {name} | {one[1]:.1e} | {one[2]:.1e} | {two[1]:.1e} | {two[2]:.1e} |")
    print(f"\n{len(names)} of {len(NAMES)} entries on {device}; largest difference {worst:.1e}")


def ddp_table() -> None:
    import torch
    from train.pipeline_cases import NAMES

    worker = ROOT / "tests" / "train" / "ddp_registry_worker.py"
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for world in (1, 2):
            out = Path(tmp) / f"{world}.pt"
            subprocess.run([sys.executable, str(worker), str(world), str(out), *NAMES], check=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
            runs[world] = torch.load(out, weights_only=True)
    print("| entry | relative difference, 2 ranks vs 1 process |")
    print("|---|---|")
    for name in NAMES:
        one, two = runs[1][name], runs[2][name]
        if "error" in one or "error" in two:
            message = (one.get("error") or two.get("error")).strip().splitlines()[-1]
            print(f"| {name} | error: {message} |")
            continue
        scale = max(1.0, float(one["projections"].abs().max()))
        print(f"| {name} | {float((one['projections'] - two['projections']).abs().max()) / scale:.1e} |")


if __name__ == "__main__":
    micro_batch_table(sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu",
                      sys.argv[sys.argv.index("--entries") + 1].split(",") if "--entries" in sys.argv else None)
    if "--ddp" in sys.argv:
        print()
        ddp_table()
