"""``rlobj fit`` from a YAML file written from dicts: the short CPU runs the data-loop tests make."""

import yaml

from rlobj.train.cli import run


def addition_data(prompts_per_step: int, eval_size: int = 4) -> dict:
    """The ``data:`` group of a short run on generated addition (train seed 1, eval seed 2)."""
    return {"train": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 1}},
            "eval": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 2}},
            "prompts_per_step": prompts_per_step, "eval_size": eval_size}


def write_fit_config(tmp_path, model: dict, data: dict, max_steps: int = 2) -> str:
    """Write ``{trainer, model, data}`` to ``tmp_path/config.yaml`` (CPU, no logger, no checkpoints, no
    validation) and return its path."""
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
    return str(path)


def fit_from_yaml(tmp_path, model: dict, data: dict, max_steps: int = 2):
    """:func:`write_fit_config`, then ``rlobj fit`` on it; returns the CLI (``.model``, ``.datamodule``,
    ``.trainer``)."""
    return run(["fit", "--config", write_fit_config(tmp_path, model, data, max_steps)])
