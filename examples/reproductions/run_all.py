r"""Run the seven reproductions on the countdown-trace testbed and write their tables and plots.

    python examples/reproductions/run_all.py                       # every claim, 3 seeds
    python examples/reproductions/run_all.py --claims psr_nsr      # one claim (or a comma list)
    python examples/reproductions/run_all.py --smoke --out /tmp/x  # a few steps, 1 seed (the tests)
    python examples/reproductions/run_all.py --task habit --claims psr_nsr,support_shrinkage  # third run

Phase 1 warms up one policy per seed (cached); phase 2 trains every (method, seed) run the chosen
claims need, ``--workers`` at a time (one process each, one torch thread each), and writes each
claim's ``docs/reproductions/traces/<claim>/results.md``, ``results.json`` and plots as soon as its
runs are done, so partial results can be committed. Runs are cached under
``runs/reproductions/trace_runs/``; a second call only redoes what is missing.
``--accelerator gpu`` runs the trainer and the evaluations on a GPU (several processes share it).
The predictions and the analysis are in ``docs/reproductions.md`` (written before the runs).
"""

import argparse
import concurrent.futures as futures
import multiprocessing
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _init(accelerator: str, task: str) -> None:
    os.environ["RLOBJ_REPRO_ACCELERATOR"] = accelerator
    os.environ["RLOBJ_REPRO_TASK"] = task
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(HERE))


def _warm(seed: int, smoke: bool) -> dict:
    import _testbed as T
    import torch

    torch.set_num_threads(1)
    T.quiet()
    warm = T.warm_start(seed, steps=10 if smoke else T.WARMUP_STEPS, smoke=smoke)
    import claims as C

    base = C.base_one(seed, smoke)
    return {"seed": seed, "warm": warm, **T.warmup_info(warm), "base": base["eval"]}


def _train(key: str, seed: int, steps: int, smoke: bool) -> dict:
    import claims as C

    out = C.train_one(key, seed, steps, smoke)
    return {"key": key, "seed": seed, "seconds": out["seconds"], "pass@1": out["eval"]["pass@1"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", default="all", help="comma list of claims (default all)")
    parser.add_argument("--smoke", action="store_true", help="a few steps, 1 seed: keeps the code working")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="RL steps per run (default: the testbed's)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--task", choices=("uniform", "habit"), default="uniform",
                        help="testbed variant (_testbed.VARIANTS; default uniform, the second full run)")
    parser.add_argument("--out", default=None,
                        help="folder for the claims' folders (default docs/reproductions/traces[-<task>])")
    args = parser.parse_args(argv)
    _init(args.accelerator, args.task)
    import _testbed as T
    import claims as C
    import reports as R

    T.quiet()
    names = list(C.CLAIMS) if args.claims == "all" else [c.strip() for c in args.claims.split(",") if c.strip()]
    unknown = [c for c in names if c not in C.CLAIMS]
    if unknown:
        parser.error(f"--claims: unknown {unknown}; expected some of {list(C.CLAIMS)}")
    if args.smoke:
        args.seeds = 1
    steps = args.steps or (2 if args.smoke else R.RL_STEPS)
    seeds = list(range(args.seeds))
    root = Path(args.out) if args.out else (T.CACHE / "smoke" if args.smoke else T.DOCS / ("traces" if args.task == "uniform" else f"traces-{args.task}"))
    started = args.started = time.perf_counter()
    log = T.logger("run_all")
    log(f"claims {names}, seeds {seeds}, {steps} RL steps per run, {args.workers} worker(s), {args.accelerator}")
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(args.workers, mp_context=context, initializer=_init,
                                     initargs=(args.accelerator, args.task)) as pool:
        warm = {}
        for job in futures.as_completed([pool.submit(_warm, seed, args.smoke) for seed in seeds]):
            info = job.result()
            warm[info["seed"]] = info
            log(f"warm start seed {info['seed']}: {info['sft_steps']} sft steps, base {info['base']}")
        R.write_warm_table(root, [warm[s] for s in seeds], args)
        needed = {claim: [(key, seed) for key in C.CLAIMS[claim] for seed in seeds] for claim in names}
        jobs = list(dict.fromkeys(run for claim in names for run in needed[claim]))
        done: set = set()
        pending = {pool.submit(_train, key, seed, steps, args.smoke): (key, seed) for key, seed in jobs}
        reported: set = set()
        for job in futures.as_completed(pending):
            result = job.result()
            done.add(pending[job])
            log(f"{result['key']} seed {result['seed']}: {result['seconds']:.0f} s, pass@1 {result['pass@1']:.3f} "
                f"({len(done)}/{len(jobs)})")
            for claim in names:
                if claim not in reported and all(run in done for run in needed[claim]):
                    reported.add(claim)
                    try:
                        R.report(claim, root, seeds, steps, args)
                        log(f"claim {claim}: written to {root / claim}")
                    except Exception as error:  # the runs stay cached: a later call re-reports
                        log(f"claim {claim}: report failed: {error!r}")
                        if args.smoke:
                            raise
    log(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
