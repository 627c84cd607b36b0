"""pass@k curves and training-curve plots (rlobj/eval/plots.py): a PNG is written, curves come from a
metrics CSV."""


import pytest

from rlobj.eval import (
    pass_at_k_curve,
    plot_pass_at_k,
    plot_training_curves,
    read_metrics_csv,
)


# =========================================================================== plots and curves
def test_plot_pass_at_k_writes_a_png(tmp_path):
    curves = {"base": pass_at_k_curve([(16, 1), (16, 6), (16, 0)], [1, 2, 4, 8, 16]),
              "rl": pass_at_k_curve([(16, 9), (16, 14), (16, 0)], [1, 2, 4, 8, 16])}
    path = plot_pass_at_k(curves, tmp_path / "sub" / "passk.png")
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"curve 'x' needs int k >= 1 and values in \[0, 1\]"):
        plot_pass_at_k({"x": {1: 1.5}}, tmp_path / "bad.png")


def write_csv(path, rows):
    columns = ["epoch", "step", "entropy", "response/length_mean", "reward/mean"]
    lines = [",".join(columns)] + [",".join("" if row.get(c) is None else str(row[c]) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_curves_from_metrics_csv(tmp_path):
    # Lightning CSVLogger style: sparse rows, some metrics logged only on some rows
    first = write_csv(tmp_path / "a.csv", [
        {"epoch": 0, "step": 0, "entropy": 1.5, "response/length_mean": 40},
        {"epoch": 0, "step": 1, "entropy": 1.2, "reward/mean": 0.5},
        {"epoch": 0, "step": 2, "entropy": 0.9, "response/length_mean": 55},
    ])
    second = write_csv(tmp_path / "b.csv", [{"epoch": 0, "step": 0, "entropy": 1.4, "response/length_mean": 30}])
    series = read_metrics_csv(first)
    assert series["entropy"] == [(0.0, 1.5), (1.0, 1.2), (2.0, 0.9)]
    assert series["response/length_mean"] == [(0.0, 40.0), (2.0, 55.0)]
    assert series["epoch"] == [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]
    path = plot_training_curves({"run a": first, "run b": second}, tmp_path / "curves.png")
    assert path.is_file() and path.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"no run logged 'kl/ref_k3'; columns: \['entropy', 'epoch'"):
        plot_training_curves({"a": first}, tmp_path / "x.png", metrics=[("kl/ref_k3", "KL")])
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_metrics_csv(tmp_path / "missing.csv")
