"""Callbacks: progress lines, the before/after evaluation table, and PNG plots at the end."""

import math
import os
import time

import lightning as L

__all__ = ["ProgressPrinter", "EvalTable", "MetricPlots"]


class ProgressPrinter(L.Callback):
    """Print one line every ``every`` training steps (phase, loss, reward, pass rate, speed)."""

    def __init__(self, every: int = 25):
        self.every = every
        self._start = None

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        metrics = getattr(pl_module, "last_metrics", {})
        step = int(batch["step"])
        if trainer.global_rank != 0 or (step + 1) % self.every:
            return
        phase = "sft" if metrics.get("phase", 1.0) == 0.0 else "rl "
        parts = [f"[{phase}] step {step + 1:4d}", f"{time.perf_counter() - self._start:6.1f}s",
                 f"loss {metrics.get('loss', math.nan):+.4f}"]
        if phase == "rl ":
            parts += [f"reward {metrics.get('reward/mean', math.nan):.3f}",
                      f"entropy {metrics.get('entropy', math.nan):.3f}",
                      f"len {metrics.get('response/length_mean', math.nan):.2f}"]
        else:
            parts.append(f"nll {metrics.get('sft/nll', math.nan):.3f}")
        print("  ".join(parts), flush=True)


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
        figure.tight_layout()
        directory = trainer.log_dir or trainer.default_root_dir
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, self.filename)
        figure.savefig(self.path, dpi=80)
        plt.close(figure)
