r"""The reproductions' testbed: countdown with a written derivation, trained through the public trainer.

Every run is an :class:`rlobj.train.RLModule` fitted by a Lightning ``Trainer`` on an
:class:`rlobj.train.RLDataModule`, exactly as a user would run it (``rlobj fit`` builds the same
three objects from YAML). Per seed, one warm-up run (``warmup.steps`` sft steps on the task's
demonstrations) is exported as a Hugging Face model directory; every method of every claim then
starts from it through ``policy.model_path``. Lp-Reg's proxy, SIREN's vocabulary view, the
reference model... come from the trainer's default providers; nothing is supplied on the side.

Task: :class:`rlobj.train.trace_tasks.CountdownTrace` (five numbers 1..9, ``+``/``-``, the
derivation written step by step with the pool copied after each step; about 40 tokens), scored by
:class:`~rlobj.train.trace_tasks.TraceVerifier` (the whole trace must be valid). Model: the
tiny Qwen2 with ``MODEL`` (twice the default's depth). Evaluation: the module's own
:meth:`~rlobj.train.RLModule.evaluate` (``evaluation.samples`` samples at temperature 1 on the
seed's held-out problems, unbiased pass@k).
"""

import contextlib
import functools
import io
import json
import logging
import os
import statistics
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from _common import logger, markdown_table, mean_std, plot_curves, plot_solve_rates, pyplot  # noqa: F401 (re-exported)

from rlobj.train import RLDataModule, RLModule
from rlobj.train.trace_tasks import TRACE_CHARS, CountdownTrace, TraceVerifier

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "reproductions"
CACHE = ROOT / "runs" / "reproductions"

#: The policy: tiny Qwen2, hidden 128, 4 layers (the default run's has 2), 4 heads.
MODEL = {"hidden_size": 128, "layers": 4, "heads": 4}
#: Task variants (``run_all.py --task``, ``RLOBJ_REPRO_TASK`` in the worker processes):
#: ``task`` makes the RL, validation and evaluation problems, ``demos`` the warm-up's
#: demonstrations, ``target`` the warm-up gate's pass@1 (the band asked for is 0.2-0.6).
#: "uniform" (the second full run): five numbers in 1..4, random signs, demonstrations from the same
#: stream (the first full run used 1..9, where a policy imitating the demonstrations reaches about
#: 0.13 and the warm starts stopped at pass@1 0.14-0.18). "habit" (the third run, claims 2 and 5):
#: numbers 1..6, problems with "+" in 70% of their steps, demonstrations with "+" in 92%: a policy
#: imitating them solves some problems only rarely (docs/reproductions.md, "Amendments").
VARIANTS = {
    "uniform": {"task": {"numbers": 5, "low": 1, "high": 4}, "demos": {"numbers": 5, "low": 1, "high": 4},
                "target": 0.25},
    "habit": {"task": {"numbers": 5, "low": 1, "high": 6, "plus": 0.7},
              "demos": {"numbers": 5, "low": 1, "high": 6, "plus": 0.92}, "target": 0.22},
}
VARIANT = os.environ.get("RLOBJ_REPRO_TASK", "uniform")
if VARIANT not in VARIANTS:
    raise ValueError(f"RLOBJ_REPRO_TASK={VARIANT!r}: expected one of {sorted(VARIANTS)}")
TASK, DEMOS = VARIANTS[VARIANT]["task"], VARIANTS[VARIANT]["demos"]
#: Supervised warm-up: at most WARMUP_STEPS steps, stopped at the first check (every WARMUP_CHECK
#: steps) whose validation pass@1 (on the task's problems) reaches WARMUP_TARGET.
WARMUP_STEPS = 1500
WARMUP_CHECK = 100
WARMUP_TARGET = VARIANTS[VARIANT]["target"]
WARMUP_PROMPTS = 32
WARMUP_LR = 1e-3
#: RL settings shared by the claims (a claim's recipe may change the objective and update plan).
PROMPTS = 8
GROUP = 8
LR = 1e-4
MAX_NEW_TOKENS = 64
#: Training stream: CountdownTrace(seed + 1) (RL continues after the warm-up's prompts);
#: evaluation: CountdownTrace(seed + 1000), records 0..EVAL_SIZE-1.
EVAL_SIZE = 64
#: "cpu" (default) or "gpu": where the trainer runs (``--accelerator``; also the evaluations).
ACCELERATOR = os.environ.get("RLOBJ_REPRO_ACCELERATOR", "cpu")


def quiet() -> None:
    """Silence Lightning's banners (one run per method and seed would print dozens)."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*IterableDataset.*")


def settings(seed: int, model_path: str | None = None, lr: float = LR, **groups) -> dict:
    """RLModule arguments of the testbed; ``groups`` update the grouped defaults (mappings merge)."""
    policy = {"model_path": model_path} if model_path else {"tiny_model": {**MODEL, "seed": seed},
                                                            "tokenizer_chars": TRACE_CHARS}
    base = dict(policy=policy, rollout={"group_size": GROUP, "max_new_tokens": MAX_NEW_TOKENS},
                optimizer=functools.partial(torch.optim.AdamW, lr=lr, weight_decay=0.0),
                update={"grad_clip": 1.0}, evaluation={"samples": 8, "k": [1, 8]}, verifier=TraceVerifier(),
                seed=seed)
    for key, value in groups.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) and isinstance(value, dict) else value
    return base


class StepRows(L.Callback):
    """Keeps every training step's metrics (``pl_module.last_metrics``) as a list of dicts."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        row = {k: float(v) for k, v in getattr(pl_module, "last_metrics", {}).items()}
        row["step"] = len(self.rows) + 1
        self.rows.append(row)


def fit(module: RLModule, data: RLDataModule, batches: int, callbacks=()) -> list[dict[str, float]]:
    """``trainer.fit`` for ``batches`` data batches (one training step each); the per-step metrics."""
    rows = StepRows()
    trainer = L.Trainer(accelerator=ACCELERATOR, devices=1, max_epochs=1, max_steps=-1, limit_train_batches=batches,
                        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, callbacks=[rows, *callbacks])
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(module, datamodule=data)
    return rows.rows


def eval_records(seed: int, size: int = EVAL_SIZE) -> list[dict]:
    return CountdownTrace(seed=seed + 1000, **TASK).records(0, size)


class _WarmupGate(L.Callback):
    """Stops the warm-up at the first check (every ``every`` sft steps) where pass@1 on a validation
    set (``CountdownTrace(seed + 2000)``, not the evaluation set) reaches ``target``."""

    def __init__(self, seed: int, every: int, target: float, size: int, samples: int):
        self.seed, self.every, self.target = seed, every, target
        self.records, self.samples, self.checks = CountdownTrace(seed=seed + 2000, **TASK).records(0, size), samples, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.every:
            return
        result, _ = evaluate(pl_module, self.records, self.samples, [1], seed=self.seed * 13 + batch_idx)
        self.checks.append((batch_idx + 1, result["pass@1"]))
        if result["pass@1"] >= self.target:
            trainer.should_stop = True


def warm_start(seed: int, steps: int = WARMUP_STEPS, use_cache: bool = True, log=print, smoke: bool = False) -> str:
    """Directory of the seed's warm-started policy (cached), through the trainer's supervised warm-up.

    ``sft`` on the variant's demonstrations (``DEMOS``; ``WARMUP_PROMPTS`` per step, lr ``WARMUP_LR``); every
    ``WARMUP_CHECK`` steps pass@1 is measured on 64 validation problems x 16 samples and the
    warm-up stops at the first check reaching ``WARMUP_TARGET`` (at most ``steps`` steps). The
    steps taken and the checks are saved in ``warmup.json`` beside the weights.
    """
    task = "n{numbers}_{low}to{high}".format(**TASK) + ("" if VARIANT == "uniform" else f"_{VARIANT}")
    name = f"trace_warm_{task}_seed{seed}_max{steps}_{MODEL['hidden_size']}x{MODEL['layers']}"
    path = CACHE / ("smoke" if smoke else "") / name
    if use_cache and (path / "config.json").exists():
        return str(path)
    started = time.perf_counter()
    torch.manual_seed(seed)
    module = RLModule(objective="grpo", warmup={"steps": steps, "lr": WARMUP_LR, "eval_at_end": False},
                      **settings(seed))
    data = RLDataModule(train=CountdownTrace(seed=seed + 1, **DEMOS), eval=CountdownTrace(seed=seed + 1000, **TASK),
                        prompts_per_step=WARMUP_PROMPTS, eval_size=8)
    gate = _WarmupGate(seed, min(WARMUP_CHECK, steps), WARMUP_TARGET, 8 if smoke else 64, 4 if smoke else 16)
    rows = fit(module, data, steps, callbacks=[gate])
    path.mkdir(parents=True, exist_ok=True)
    module.policy.save_pretrained(path)
    module.tokenizer.save_pretrained(path)
    nll = [r["sft/nll"] for r in rows if "sft/nll" in r]
    info = {"seed": seed, "sft_steps": len(rows), "checks": gate.checks, "nll_first": nll[0],
            "nll_last10": statistics.mean(nll[-10:]), "seconds": time.perf_counter() - started}
    (path / "warmup.json").write_text(json.dumps(info))
    log(f"warm-up seed {seed}: {len(rows)} sft steps in {info['seconds']:.0f} s, checks {gate.checks}")
    return str(path)


def warmup_info(warm: str) -> dict:
    return json.loads((Path(warm) / "warmup.json").read_text())


def rl_module(objective, seed: int, warm: str, **groups) -> RLModule:
    """An RLModule of the testbed starting from the warm-started policy ``warm``."""
    torch.manual_seed(seed)
    return RLModule(objective=objective, **settings(seed, model_path=warm, **groups))


def rl_data(seed: int, prompts: int = PROMPTS) -> RLDataModule:
    # RL prompts: the training stream after the warm-up's records
    return RLDataModule(train=_Offset(CountdownTrace(seed=seed + 1, **TASK), WARMUP_STEPS * WARMUP_PROMPTS),
                        eval=CountdownTrace(seed=seed + 1000, **TASK), prompts_per_step=prompts, eval_size=8)


class _Offset(CountdownTrace):  # noqa: D101
    """``source`` shifted by ``offset`` records (the RL stream continues after the warm-up's prompts)."""

    def __init__(self, source: CountdownTrace, offset: int):
        super().__init__(source.seed, source.numbers, source.low, source.high, source.plus)
        self.offset = offset

    def record(self, index: int) -> dict:
        return super().record(index + self.offset)


def evaluate(module: RLModule, records: list[dict], samples: int, ks: list[int], seed: int,
             verifier=None) -> tuple[dict[str, float], list[int]]:
    """pass@k of ``module`` (its own ``evaluate``, ``samples`` per record) and the per-record counts.

    ``verifier`` replaces the module's scorer for the evaluation (the noisy-verifier claim
    evaluates with the clean verifier).
    """
    from rlobj.train.config import EvalConfig
    from rlobj.train.scorers import VerifierScorer

    saved = module.cfg.evaluation, module.scorer, module.hparams.seed
    module.cfg.evaluation = EvalConfig(samples=samples, k=[k for k in ks if k <= samples])
    if verifier is not None:
        module.scorer = VerifierScorer(verifier)
    module.hparams.seed = seed
    if ACCELERATOR == "gpu":
        module.to("cuda")
    out: list[dict] = []
    try:
        module.policy.eval()
        result = module.evaluate(records, samples_out=out)
    finally:
        module.policy.train()
        module.cfg.evaluation, module.scorer, module.hparams.seed = saved
    return result, [row["c"] for row in out]


# ------------------------------------------------------------------ tables, plots (shared with _common)
def per_seed_table(rows: dict[str, dict[str, list[float]]], column: str) -> str:
    """One column's value per seed (the sharper evidence when seeds differ a lot)."""
    seeds = max(len(v.get(column, [])) for v in rows.values())
    lines = [f"| method ({column}) | " + " | ".join(f"seed {s}" for s in range(seeds)) + " |",
             "|---" * (seeds + 1) + "|"]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values.get(column, [])) + " |")
    return "\n".join(lines)


def write_results(folder: Path, text: str, extra: dict, started: float, args) -> None:
    """``results.md`` (tables + wall time) and ``results.json`` (raw numbers).

    ``started`` is when ``run_all.py`` started (``perf_counter``), so the wall time printed is the
    whole call's up to this claim's report (warm-ups and every run finished before it included).
    """
    wall = time.perf_counter() - started
    mode = "smoke" if args.smoke else "full"
    text = (f"{text}\n\n_{mode} run, {args.seeds} seed(s); written {wall:.0f} s after `run_all.py` started "
            f"({args.workers} worker process(es) of one torch thread each, on a shared 2-core machine)._\n")
    (folder / "results.md").write_text(text)
    (folder / "results.json").write_text(json.dumps({**extra, "wall_seconds": wall, "seeds": args.seeds,
                                                      "smoke": args.smoke}, indent=1, default=float))
    print(text, flush=True)


