"""``rlobj fit`` from a YAML file written from dicts: the short CPU runs the data-loop tests make."""

import yaml

from rlobj.train.cli import run


def fit_from_yaml(tmp_path, model: dict, data: dict, max_steps: int = 2):
    """Write ``{trainer, model, data}`` to ``tmp_path/config.yaml`` and run ``rlobj fit`` on it (CPU, no
    logger, no checkpoints, no validation); returns the CLI (``.model``, ``.datamodule``, ``.trainer``)."""
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": max_steps, "limit_val_batches": 0,
                    "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "enable_checkpointing": False, "default_root_dir": str(tmp_path)},
        "model": model,
        "data": data,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run(["fit", "--config", str(path)])
