"""Callbacks: progress lines, completions tables, the before/after evaluation table, PNG plots."""

import csv
import math
import os
import sys
import time

import lightning as L

__all__ = ["ProgressPrinter", "CompletionsTable", "EvalTable", "MetricPlots"]

#: Printed once, at the first RL line whose loss is (near) zero.
ZERO_LOSS_NOTE = ("(loss: the policy-gradient surrogate's value is ~0 on-policy by construction: the "
                  "ratio is 1 and group-centred advantages average to 0; its gradient is not 0 and is "
                  "what trains the policy: see grad_norm)")


def is_terminal() -> bool:
    """Whether standard output is an interactive terminal (not a log file or a pipe)."""
    return sys.stdout.isatty()


class ProgressPrinter(L.Callback):
    """Print one line every ``every`` training steps (phase, loss, grad norm, reward, entropy, length).

    The plain printer for logs and CI. On a terminal with Lightning's progress bar on (``rlobj
    fit`` turns it on, rich when installed, when ``trainer.enable_progress_bar`` is not set) it
    stays quiet unless ``on_terminal=True``: the bar shows the step, loss and reward. On-policy
    GRPO's loss value is 0 by construction (ratio 1, centred advantages) while its gradient is
    not: RL lines print ``grad_norm`` next to it and the first zero loss is explained once.
    """

    def __init__(self, every: int = 25, on_terminal: bool = False):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected an int >= 1, got {every!r}")
        self.every, self.on_terminal = every, on_terminal
        self._start = None
        self._explained = False

    def quiet(self, trainer) -> bool:
        """True when a progress bar already shows the run on a terminal (and ``on_terminal`` is off)."""
        return not self.on_terminal and trainer.progress_bar_callback is not None and is_terminal()

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        metrics = getattr(pl_module, "last_metrics", {})
        step = int(batch["step"])
        if trainer.global_rank != 0 or (step + 1) % self.every or self.quiet(trainer):
            return
        phase = "sft" if metrics.get("phase", 1.0) == 0.0 else "rl "
        parts = [f"[{phase}] step {step + 1:4d}", f"{time.perf_counter() - self._start:6.1f}s",
                 f"loss {metrics.get('loss', math.nan):+.4f}"]
        if phase == "rl ":
            parts += [f"grad_norm {metrics.get('grad_norm', math.nan):.4f}",
                      f"reward {metrics.get('reward/mean', math.nan):.3f}",
                      f"entropy {metrics.get('entropy', math.nan):.3f}",
                      f"len {metrics.get('response/length_mean', math.nan):.2f}"]
        else:
            parts.append(f"nll {metrics.get('sft/nll', math.nan):.3f}")
        print("  ".join(parts), flush=True)
        if phase == "rl " and not self._explained and abs(metrics.get("loss", math.nan)) < 5e-5:
            print(ZERO_LOSS_NOTE, flush=True)
            self._explained = True


def completion_rows(pl_module, limit: int) -> list[list]:
    """``[prompt, completion, reward, advantage]`` for the first ``limit`` rows of the module's
    last RL batch (the advantage is the row's mean over its response tokens)."""
    batch, prepared = pl_module.last_batch
    completions = pl_module.decode_responses(batch.rollout)
    advantages = prepared.advantages
    mask = prepared.mask
    rows = []
    for b in range(min(limit, len(batch))):
        if advantages is None:
            advantage = math.nan
        elif advantages.dim() == 2:
            valid = mask[b].bool()
            advantage = float(advantages[b][valid].float().mean()) if bool(valid.any()) else math.nan
        else:
            advantage = float(advantages[b])
        rows.append([str(batch.records[b]["prompt"]), completions[b], float(batch.scores[b].reward), advantage])
    return rows


class CompletionsTable(L.Callback):
    """Every ``every`` RL steps, log a table of ``prompt, completion, reward, advantage`` rows.

    Rows are the first ``rows`` responses of the step's RL batch (after transforms). They go to
    ``<log_dir>/completions.csv`` (one file, a ``step`` column first) and to every logger that
    takes tables: ``log_table`` (Weights & Biases), TensorBoard (a Markdown table under
    ``completions`` in the Text tab) and MLflow (``completions/step_<n>.json`` through
    ``MlflowClient.log_table``). Other loggers (CSVLogger) get the CSV file only.

    Args:
        every: log at RL steps whose number is a multiple of ``every``. Default 25.
        rows: rows per table. Default 8.
        filename: the CSV file name in the log directory. Default ``completions.csv``.
    """

    COLUMNS = ["prompt", "completion", "reward", "advantage"]

    def __init__(self, every: int = 25, rows: int = 8, filename: str = "completions.csv"):
        for name, value in (("every", every), ("rows", rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        self.every, self.rows, self.filename = every, rows, filename
        self.path = None
        self.logged_steps: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = int(batch["step"]) + 1
        metrics = getattr(pl_module, "last_metrics", {})
        if (trainer.global_rank != 0 or metrics.get("phase", 0.0) != 1.0 or step % self.every
                or getattr(pl_module, "last_batch", None) is None):
            return
        data = completion_rows(pl_module, self.rows)
        directory = trainer.log_dir or trainer.default_root_dir
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, self.filename)
        new = not os.path.exists(self.path)
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", *self.COLUMNS])
            writer.writerows([[step, *row] for row in data])
        for logger in trainer.loggers:
            log_table(logger, "completions", self.COLUMNS, data, step)
        self.logged_steps.append(step)


def log_table(logger, key: str, columns: list[str], data: list[list], step: int) -> bool:
    """Log a table to ``logger`` if it takes tables; returns whether it did."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

    if hasattr(logger, "log_table"):  # WandbLogger
        logger.log_table(key=key, columns=columns, data=data, step=step)
        return True
    if isinstance(logger, TensorBoardLogger):
        def cell(value):
            return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in data]
        logger.experiment.add_text(key, "\n".join(lines), global_step=step)
        return True
    if isinstance(logger, MLFlowLogger):
        table = {name: [row[i] for row in data] for i, name in enumerate(columns)}
        logger.experiment.log_table(logger.run_id, data=table, artifact_file=f"{key}/step_{step}.json")
        return True
    return False


class EvalTable(L.Callback):
    """Evaluate at the start (optional) and end of training; print the before/after table.

    Rows come from the module's evaluation history: the "before RL" row the module records
    right before its first RL step (after the supervised warm-up), and "after RL" at the end.
    """

    def __init__(self, eval_at_start: bool = False, print_table: bool = True):
        self.eval_at_start, self.print_table = eval_at_start, print_table
        self.table = ""

    def on_train_start(self, trainer, pl_module):
        if self.eval_at_start and not pl_module.eval_history:
            pl_module.run_evaluation("initial")

    def on_train_end(self, trainer, pl_module):
        from rlobj.eval.table import format_table

        pl_module.run_evaluation("after RL" if pl_module.rl_updates else "final")
        rows = [(label, values) for label, _, values in pl_module.eval_history]
        if rows and trainer.global_rank == 0:
            columns = [c for c in rows[-1][1] if c.startswith(("pass@", "maj@"))]
            self.table = format_table(rows, columns)
            if self.print_table:
                print(self.table, flush=True)
            directory = trainer.log_dir or trainer.default_root_dir
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "eval_table.txt"), "w") as handle:
                handle.write(self.table + "\n")


class MetricPlots(L.Callback):
    """At the end of training, plot reward, entropy, KL and response length against step (PNG)."""

    KEYS = (("reward/mean", "reward"), ("entropy", "entropy"), ("kl/old_k3", "KL per token (k3)"),
            ("response/length_mean", "response length"))

    def __init__(self, filename: str = "metrics.png"):
        self.filename = filename
        self.history: list[tuple[int, dict]] = []
        self.path = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        metrics = getattr(pl_module, "last_metrics", None)
        if metrics is not None:
            self.history.append((int(batch["step"]) + 1, dict(metrics)))

    def on_train_end(self, trainer, pl_module):
        if trainer.global_rank != 0 or not self.history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(2, 2, figsize=(10, 7))
        for axis, (key, title) in zip(axes.flat, self.KEYS):
            points = [(s, m[key]) for s, m in self.history if key in m and math.isfinite(m[key])]
            if key == "kl/old_k3" and any("kl/ref_k3" in m for _, m in self.history):
                ref = [(s, m["kl/ref_k3"]) for s, m in self.history if "kl/ref_k3" in m]
                axis.plot(*zip(*ref), label="KL(ref: policy at the first RL step), k3")
            if points:
                axis.plot(*zip(*points), label="KL(old), k3" if key == "kl/old_k3" else title)
            if key == "kl/old_k3":
                axis.legend()
            axis.set_title(title)
            axis.set_xlabel("step")
            axis.grid(alpha=0.3)
        from rlobj.eval.plots import save_figure

        self.path = str(save_figure(figure, os.path.join(trainer.log_dir or trainer.default_root_dir, self.filename)))
