r"""Evaluation plots (PNG, matplotlib): pass@k versus k for several checkpoints, and training curves
(entropy, response length) read from the metrics CSV files that Lightning's ``CSVLogger`` writes.

pass@k curves use the unbiased estimator (:func:`rlobj.eval.passk.pass_at_k`) at every $k$,
on a log-2 axis, the way Yue et al. (arXiv 2504.13837, Fig. 1-2) compare a base model with its
RL-trained version: RL curves start higher and are often overtaken at large $k$.
"""

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from rlobj.eval.passk import pass_at_k

__all__ = ["pass_at_k_curve", "plot_pass_at_k", "read_metrics_csv", "plot_training_curves", "TRAINING_CURVES",
           "save_figure"]

#: The trainer's metric names for the default training curves, with their titles.
TRAINING_CURVES = (("entropy", "token entropy"), ("response/length_mean", "response length (tokens)"))


def pass_at_k_curve(counts: Sequence[tuple[int, int]], ks: Sequence[int]) -> dict[int, float]:
    """Mean unbiased pass@k over problems given as ``(n, c)`` pairs, for every ``k`` in ``ks``.

    Example:
        >>> pass_at_k_curve([(4, 1), (4, 0)], [1, 2, 4])
        {1: 0.125, 2: 0.25, 4: 0.5}
    """
    if not counts:
        raise ValueError("pass_at_k_curve: counts must hold at least one (n, c) pair, got none")
    return {int(k): sum(pass_at_k(n, c, int(k)) for n, c in counts) / len(counts) for k in ks}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pass_at_k(curves: Mapping[str, Mapping[int, float]], path: str | Path,
                   title: str = "pass@k versus k") -> Path:
    """Write a PNG with one pass@k curve per checkpoint (label -> {k: pass@k}); returns the path."""
    if not curves:
        raise ValueError("plot_pass_at_k: curves must hold at least one checkpoint")
    for label, curve in curves.items():
        if not curve:
            raise ValueError(f"plot_pass_at_k: the curve of {label!r} is empty")
        bad = {k: v for k, v in curve.items() if not (isinstance(k, int) and k >= 1 and 0.0 <= v <= 1.0)}
        if bad:
            raise ValueError(f"plot_pass_at_k: curve {label!r} needs int k >= 1 and values in [0, 1], got {bad}")
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    for label, curve in curves.items():
        ks = sorted(curve)
        axis.plot(ks, [curve[k] for k in ks], marker="o", markersize=3, label=label)
    axis.set_xscale("log", base=2)
    axis.set(xlabel="k (samples)", ylabel="pass@k", title=title, ylim=(0, 1.02))
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, path)


def read_metrics_csv(path: str | Path, step_column: str = "step") -> dict[str, list[tuple[float, float]]]:
    """Every numeric column of a metrics CSV as ``name -> [(step, value), ...]`` (empty cells skipped).

    Lightning's ``CSVLogger`` writes one row per logging call with empty cells for the metrics
    not logged then; rows without a step are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_metrics_csv: no such file {str(path)!r}")
    series: dict[str, list[tuple[float, float]]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or step_column not in reader.fieldnames:
            raise ValueError(f"read_metrics_csv: {str(path)!r} has no {step_column!r} column "
                             f"(columns: {reader.fieldnames})")
        for row in reader:
            try:
                step = float(row[step_column])
            except (TypeError, ValueError):
                continue
            for name, text in row.items():
                if name == step_column or text in (None, ""):
                    continue
                try:
                    value = float(text)
                except ValueError:
                    continue
                if math.isfinite(value):
                    series.setdefault(name, []).append((step, value))
    return series


def plot_training_curves(runs: Mapping[str, str | Path], path: str | Path,
                         metrics: Sequence[tuple[str, str]] = TRAINING_CURVES) -> Path:
    """Write a PNG with one panel per metric (default entropy and response length), one line per run.

    Args:
        runs: label -> metrics CSV path (e.g. ``lightning_logs/version_0/metrics.csv``).
        path: the PNG to write.
        metrics: ``(column, title)`` pairs.

    A metric that no run logged is an error naming the columns that exist.
    """
    if not runs:
        raise ValueError("plot_training_curves: runs must hold at least one metrics CSV")
    data = {label: read_metrics_csv(csv_path) for label, csv_path in runs.items()}
    for column, _ in metrics:
        if not any(column in series for series in data.values()):
            available = sorted(set().union(*(series.keys() for series in data.values())))
            raise ValueError(f"plot_training_curves: no run logged {column!r}; columns: {available}")
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.6), squeeze=False)
    for axis, (column, title) in zip(axes[0], metrics, strict=True):
        for label, series in data.items():
            points = series.get(column)
            if points:
                axis.plot(*zip(*points), label=label)
        axis.set(xlabel="step", title=title)
        axis.grid(alpha=0.3)
        axis.legend()
    return save_figure(figure, path)


def save_figure(figure, path: str | Path) -> Path:
    """Lay out ``figure``, write it to ``path`` (parent folders created, 80 dpi), close it; returns the path."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
