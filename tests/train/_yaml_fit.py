"""``rlobj fit`` from a YAML file written from dicts: the short CPU runs the data-loop and model-reward
tests make."""

import json

import yaml
from train._helpers import TINY

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


def fit_yaml(tmp_path, scorer: dict | None, objective="grpo", data: dict | None = None, **model) -> dict:
    """Two RL steps of the tiny policy with ``scorer`` from a YAML config through the CLI; the last metrics."""
    model = {"policy": {"tiny_model": TINY}, "rollout": {"group_size": 4, "max_new_tokens": 4},
             "warmup": {"steps": 0, "eval_at_end": False}, "objective": objective, "scorer": scorer,
             "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1.0e-3}}, "seed": 0, **model}
    return fit_from_yaml(tmp_path, model, data or paper_rows_data(tmp_path)).model.last_metrics


QUESTIONS = [{"question": "sum?", "options": ["small", "large"], "answer": 1}]


def paper_rows_data(tmp_path) -> dict:
    """A JSONL task whose rows carry every field the paper scorers read."""
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": f"{a}+{a}=", "answer": str(2 * a), "completion": str(2 * a),
             "visual_annotations": [f"the number {a}", "a plus sign"], "questions": QUESTIONS,
             "documents": [f"{a} plus {a} is {2 * a}."]} for a in range(1, 9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"class_path": "rlobj.train.DatasetTask", "init_args": {"path": str(path), "cache_dir": str(tmp_path / "c")}}
    return {"train": task, "eval": task, "prompts_per_step": 2, "eval_size": 2}
