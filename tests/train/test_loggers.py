"""Weights & Biases (offline) and MLflow (a local SQLite store) receive metrics and completions tables.

Both packages are in the ``dev`` extras (``scripts/setup.sh`` installs them); the runs are real,
nothing is mocked and nothing leaves the machine.
"""

import json

import pytest

from ._table_fit import fit_with_table


def test_wandb_offline_gets_metrics_and_tables(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is in the dev extras (scripts/setup.sh)")
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    logger = WandbLogger(project="rlobj-test", save_dir=str(tmp_path), offline=True)
    fit_with_table(tmp_path, logger)
    import wandb

    run_dir = logger.experiment.dir
    wandb.finish()
    from pathlib import Path

    tables = sorted(Path(run_dir).rglob("completions_*.table.json"))
    assert len(tables) == 2, list(Path(run_dir).rglob("*"))
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["prompt", "completion", "reward", "advantage"] and len(table["data"]) == 3
    import time

    deadline = time.monotonic() + 30  # wandb-core appends to the offline log asynchronously; on a
    while True:                       # loaded machine the records may land after finish() returns
        records = b"".join(p.read_bytes() for p in Path(run_dir).parent.glob("*.wandb"))  # the offline run log
        if b"reward/mean" in records or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert b"reward/mean" in records and b"reward_funcs" not in records  # metrics went in (verifier run)


def test_mlflow_local_store_gets_metrics_and_tables(tmp_path):
    """A local SQLite store (MLflow's own recommendation). MLflow's plain-folder store cannot hold
    rlobj's metric names: ``loss`` is a file there, so ``loss/<part>`` cannot be a folder."""
    pytest.importorskip("mlflow", reason="mlflow-skinny is in the dev extras (scripts/setup.sh)")
    from lightning.pytorch.loggers import MLFlowLogger

    logger = MLFlowLogger(experiment_name="rlobj-test", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                          artifact_location=str(tmp_path / "artifacts"))
    fit_with_table(tmp_path, logger)
    client = logger.experiment
    artifacts = [a.path for a in client.list_artifacts(logger.run_id, "completions")]
    assert artifacts == ["completions/step_2.json", "completions/step_4.json"]
    path = client.download_artifacts(logger.run_id, "completions/step_4.json", str(tmp_path / "dl"))
    with open(path) as handle:
        table = json.load(handle)
    assert table["columns"] == ["prompt", "completion", "reward", "advantage"] and len(table["data"]) == 3
    history = client.get_metric_history(logger.run_id, "reward/mean")
    assert len(history) == 3  # the three RL steps
