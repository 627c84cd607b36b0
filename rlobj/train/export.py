r"""Export the trained policy as a Hugging Face model directory (``save_pretrained``).

:func:`export_policy` writes the policy (a PEFT / LoRA model is merged into its base first, on a
copy), its tokenizer and a ``README.md`` model card stating the objective and the run's numbers
(steps, RL updates, the evaluation rows). The directory loads with
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``; the tiny model's
character tokenizer loads with :func:`rlobj.ops.tokenizer.load_tokenizer` (or
``PreTrainedTokenizerFast.from_pretrained``): transformers 5's ``AutoTokenizer`` would give it
Qwen2's pre-tokenizer, which drops spaces. ``policy.model_path`` uses ``load_tokenizer``. A push to the
Hugging Face Hub happens only when asked (``push_to_hub="user/name"``).

Two ways in: the :class:`ExportPolicy` callback (at the end of ``rlobj fit``) and the
``rlobj export --config run.yaml --ckpt_path last.ckpt --export_dir out/`` subcommand.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import lightning as L

from rlobj.ops.errors import RlobjInputError

__all__ = ["export_policy", "ExportPolicy", "model_card"]


def _merged(policy: Any) -> Any:
    """The policy with adapters merged (a PEFT model: ``merge_and_unload`` on a copy), else itself."""
    if hasattr(policy, "merge_and_unload"):
        return copy.deepcopy(policy).merge_and_unload()
    return policy


def _objective_text(module: Any) -> str:
    spec = module.hparams.get("objective")
    return json.dumps(spec) if not isinstance(spec, str) else spec


def _plain(spec):
    return spec if isinstance(spec, (str, int, float, bool, type(None), list, dict)) else repr(spec)


def model_card(module: Any, base: str) -> str:
    """The ``README.md`` of an exported policy: objective, base model, run numbers, evaluations."""
    hp, cfg = module.hparams, module.cfg
    lrs = getattr(module, "base_lrs", None)
    lines = ["---", "library_name: transformers", "tags: [rlobj, reinforcement-learning]", "---", "",
             "# Policy trained with rlobj", "",
             f"- objective: `{_objective_text(module)}`",
             f"- supervised warm-up objective: `{json.dumps(_plain(cfg.warmup.objective))}`",
             f"- base model: {base}",
             f"- data steps: {module.data_position} (supervised warm-up: {cfg.warmup.steps})",
             f"- RL optimizer updates: {module.rl_updates}",
             f"- group size: {cfg.rollout.group_size}, max new tokens: {cfg.rollout.max_new_tokens} "
             "(EOS included), learning rate: " + (f"{lrs[0]}" if lrs else "the optimizer's"),
             f"- seed: {hp.get('seed')}"]
    if module.eval_history:
        columns = sorted({k for _, _, values in module.eval_history for k in values})
        lines += ["", "## Evaluation", "", "| when | data step | " + " | ".join(columns) + " |",
                  "|---|---|" + "---|" * len(columns)]
        for label, position, values in module.eval_history:
            cells = [f"{values[c]:.4f}" if c in values else "" for c in columns]
            lines.append(f"| {label} | {position} | " + " | ".join(cells) + " |")
    metrics = getattr(module, "last_metrics", None)
    if metrics:
        keys = [k for k in ("reward/mean", "entropy", "response/length_mean", "grad_norm") if k in metrics]
        if keys:
            lines += ["", "Last training step: " + ", ".join(f"{k} {float(metrics[k]):.4f}" for k in keys)]
    return "\n".join(lines) + "\n"


def export_policy(module: Any, directory: str | Path, push_to_hub: str | None = None,
                  private: bool = True) -> Path:
    """Write ``module``'s policy, tokenizer and model card to ``directory``; optionally push it.

    Args:
        module: an :class:`~rlobj.train.RLModule` (built: ``module.build()`` or after training).
        directory: the output folder (created; files in it are overwritten).
        push_to_hub: a Hub repository id (``"user/my-policy"``) to upload the folder to; needs a
            Hub login. Default None: nothing leaves the machine.
        private: create the Hub repository as private (with ``push_to_hub``).

    Returns:
        The directory.
    """
    if module.policy is None:
        raise RlobjInputError("export: the module's policy is not built (call module.build() or train first)")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    policy = _merged(module.policy)
    policy.save_pretrained(path, safe_serialization=True)
    module.tokenizer.save_pretrained(path)
    base = module.cfg.policy.model_path or "tiny Qwen2 built by rlobj (character tokenizer)"
    (path / "README.md").write_text(model_card(module, str(base)))
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, private=private, exist_ok=True)
        api.upload_folder(repo_id=push_to_hub, folder_path=str(path))
    return path


class ExportPolicy(L.Callback):
    """At the end of training, export the policy (:func:`export_policy`) to ``directory``.

    Args:
        directory: output folder; relative paths live under the trainer's log directory.
        push_to_hub: optional Hub repository id (upload only when given).
    """

    def __init__(self, directory: str = "policy", push_to_hub: str | None = None):
        self.directory, self.push_to_hub = directory, push_to_hub
        self.path: Path | None = None

    def on_train_end(self, trainer, pl_module):
        if trainer.global_rank != 0:
            return
        target = Path(self.directory)
        if not target.is_absolute():
            target = Path(trainer.log_dir or trainer.default_root_dir) / target
        self.path = export_policy(pl_module, target, push_to_hub=self.push_to_hub)
        print(f"exported the policy to {self.path}", flush=True)
