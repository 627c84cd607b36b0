r"""Training the default model from the CLI: ``rlobj fit --config examples/configs/default.yaml``.

The default run is one YAML file (``examples/configs/default.yaml``): a tiny Qwen2-architecture
model (hidden size 128, 2 layers, 2 heads) with a character tokenizer, both built locally
(nothing is downloaded), a supervised warm-up with the ``sft`` term on generated two-number
addition, then GRPO (``objective: grpo``) with 8 samples per prompt and 32 prompts per step,
scored by an exact-answer verifier. ``EvalTable`` prints pass@1, pass@8 and maj@8 on 256 fixed
held-out problems (8 samples each, temperature 1) right before the first RL step and at the
end; ``MetricPlots`` writes reward, entropy, KL and response length against step to
``metrics.png`` in the run folder.

The full-length run (600 ``sft`` steps, then 350 GRPO steps; about 3 minutes on 2 CPU cores,
the same run as ``bash scripts/run.sh``):

```bash
rlobj fit --config examples/configs/default.yaml
```

printed, in the project's default run:

| model | pass@1 | pass@8 |
|---|---|---|
| before RL (after the `sft` warm-up) | 0.173 | 0.668 |
| after RL (350 GRPO steps) | 0.501 | 0.879 |

This script runs the same command with command-line overrides that make it short enough for the
test that executes every example (about 20 seconds on 2 CPU cores): 240 ``sft`` steps and 16
GRPO steps, 16 prompts per step, 64 evaluation problems, a progress line every 32 steps, and the
run folder in a temporary directory:

```bash
rlobj fit --config examples/configs/default.yaml \
    --trainer.max_steps=256 --model.warmup.steps=240 \
    --data.prompts_per_step=16 --data.eval_size=64 \
    --trainer.default_root_dir=<tmp> --trainer.logger.init_args.save_dir=<tmp> \
    --trainer.callbacks='[{"class_path": "rlobj.train.ProgressPrinter", "init_args": {"every": 32}}, ...]'
```

``trainer.max_steps`` counts optimizer steps of both phases (warm-up steps + RL steps, one update
per RL batch in this config). Any key of the YAML can be overridden the same way
(``--model.objective=dr_grpo``, ``--model.rollout.group_size=4``, ``--model.optimizer.lr=1e-4``; a list of terms:
``--model.objective='[group_zscore, {clip_ratio: {eps_high: 0.28}}, seq_mean_token_mean]'``);
``rlobj fit --config examples/configs/default.yaml --print_config`` prints the resolved
configuration and ``rlobj fit --help`` every key. With so few steps the numbers below are small
and noisy: the short run only shows the mechanics; the table above is what the full schedule
reaches.

Run: ``python examples/train_from_cli.py`` (``--full`` runs the full-length command instead).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "examples/configs/default.yaml"
SFT_STEPS, RL_STEPS, PROMPTS, EVAL_SIZE, EVERY = 240, 16, 16, 64, 32


def rlobj_command() -> list[str]:
    """The ``rlobj`` console script next to this interpreter, else ``python -m rlobj.train.cli``."""
    script = Path(sys.executable).with_name("rlobj")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rlobj.train.cli"]


def overrides(root: str, full: bool) -> list[str]:
    """Command-line overrides of the YAML: a short schedule (unless ``full``) and a run folder."""
    paths = [f"--trainer.default_root_dir={root}", f"--trainer.logger.init_args.save_dir={root}"]
    if full:
        return paths
    callbacks = ('[{"class_path": "rlobj.train.ProgressPrinter", "init_args": {"every": '
                 f'{EVERY}}}}}, {{"class_path": "rlobj.train.EvalTable"}}, '
                 '{"class_path": "rlobj.train.MetricPlots"}]')
    return [f"--trainer.max_steps={SFT_STEPS + RL_STEPS}", f"--model.warmup.steps={SFT_STEPS}",
            f"--data.prompts_per_step={PROMPTS}", f"--data.eval_size={EVAL_SIZE}", *paths,
            f"--trainer.callbacks={callbacks}"]


def main() -> int:
    full = "--full" in sys.argv[1:]
    root = tempfile.mkdtemp(prefix="rlobj_cli_")
    try:
        args = ["fit", "--config", CONFIG, *overrides(root, full)]
        shown = " ".join(a if " " not in a else repr(a) for a in args).replace(root, "<tmp>")
        print(f"$ rlobj {shown}", flush=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
        result = subprocess.run([*rlobj_command(), *args], cwd=REPO, env=env, capture_output=True,
                                text=True)
        print(result.stdout, end="", flush=True)
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            return result.returncode
        run_dirs = sorted(Path(root).glob("default/version_*"))
        if not run_dirs:
            print(f"no run folder under {root}", file=sys.stderr)
            return 1
        files = sorted(path.name for path in run_dirs[-1].iterdir())
        print(f"\nthe run folder <tmp>/default/{run_dirs[-1].name}/ holds: {', '.join(files)} "
              "(eval_table.txt is the table above, metrics.png the plots)")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
