"""The ``rlobj`` command: ``rlobj fit | validate | eval | export --config file.yaml`` (LightningCLI).

The YAML has the usual LightningCLI sections: ``trainer`` (strategy, devices, precision,
max_steps, callbacks, logger), ``model`` (the :class:`~rlobj.train.RLModule` arguments; the
objective is a list of terms with their arguments, built by :func:`rlobj.registry.build_objective`)
and ``data`` (the :class:`~rlobj.train.RLDataModule` and its task sources, ``class_path`` /
``init_args``). Everything is validated when the classes are built, before any model weight is
loaded: an unknown term, an argument of the wrong type or a missing dataset file stops the command
with a message naming the key. ``--print_config`` prints the resolved configuration.

``rlobj eval`` samples ``evaluation.samples`` answers per evaluation problem and prints pass@k / maj@k
(optionally from a checkpoint, ``--ckpt_path``); ``--counts_path=c.json`` writes the per-problem
``(n, c)`` counts, ``--compare=other.ckpt|other.json`` adds the other model's row and the
per-problem solve-rate table (support shrinkage / expansion), ``--cot_judge`` (``class_path:
rlobj.eval.RuleCotJudge``) adds CoT-pass@k, and ``--plot=passk.png`` writes pass@k versus k.

``rlobj export --ckpt_path last.ckpt --export_dir out/`` writes the policy as a Hugging Face model
directory (``save_pretrained``, tokenizer, model card); ``--push_to_hub user/name`` uploads it.

The Hub is reached only as ``transformers`` / ``datasets`` normally do: set ``HF_HUB_OFFLINE=1``
to use the local cache alone (the tests and CI do).
"""

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI

from rlobj.ops.errors import RlobjInputError
from rlobj.train.checkpoint_io import check_checkpoint_file, load_checkpoint_file
from rlobj.train.datamodule import RLDataModule
from rlobj.train.module import RLModule

__all__ = ["RlobjTrainer", "RlobjCLI", "main"]


class RlobjTrainer(L.Trainer):
    """Lightning's Trainer plus ``eval``: pass@k / maj@k (and more) of a model on the evaluation set.

    ``fit(ckpt_path=file)`` checks the file first (an empty, truncated or corrupted checkpoint is
    an error naming it) and resumes with ``weights_only=True`` unless told otherwise.
    """

    def fit(self, model: RLModule, train_dataloaders=None, val_dataloaders=None,
            datamodule: RLDataModule | None = None, ckpt_path: str | None = None,
            weights_only: bool | None = True) -> None:
        """Lightning's ``fit``; see the class docstring for the checkpoint checks."""
        if isinstance(ckpt_path, (str, os.PathLike)) and str(ckpt_path) not in (
            "last", "best", "hpc", "registry"
        ):
            check_checkpoint_file(os.fspath(ckpt_path), "ckpt_path")
        return super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path,
                           weights_only=weights_only)

    def eval(self, model: RLModule, datamodule: RLDataModule | None = None, ckpt_path: str | None = None,
             counts_path: str | None = None, compare: str | None = None,
             cot_judge: Callable[[str, str], bool] | None = None, plot: str | None = None,
             min_correct: int = 1) -> dict[str, Any]:
        r"""Evaluate ``model`` (weights from ``ckpt_path`` if given), print tables, write files.

        Each evaluation problem gets ``evaluation.samples`` samples; the per-problem counts
        $(n, c)$ (samples, correct samples) give unbiased pass@k (Chen et al., arXiv 2107.03374)
        and, between two models, the solve-rate table with support shrinkage / expansion
        (:func:`rlobj.eval.compare_solve_rates`; arXiv 2504.13837, 2507.14843).

        Args:
            model: the module (built lazily here).
            datamodule: provides ``eval_records``.
            ckpt_path: a checkpoint written by ``rlobj fit``.
            counts_path: write a JSON file ``{"label", "eval_samples", "metrics", "counts":
                {problem: [n, c]}, "prompts": {problem: prompt}}`` (plus ``"cot_counts"`` with a
                judge). A problem's key is ``"<index>: <prompt, first line, <= 40 chars>"``.
            compare: a second model to compare with: a ``.ckpt`` file (evaluated here on the same
                problems and seeds) or a counts JSON written by ``counts_path`` (or a bare
                ``{problem: [n, c]}`` mapping). Prints both rows and
                ``compare_solve_rates(compare, this).table()`` (the other model is "before").
            cot_judge: a chain-of-thought judge ``judge(prompt, response) -> bool`` (e.g.
                ``class_path: rlobj.eval.RuleCotJudge``); adds ``cot_pass@k`` for every ``evaluation.k``
                (Wen et al., arXiv 2506.14245): pass@k counting only samples with a correct answer
                whose reasoning the judge accepts.
            plot: write a PNG of pass@k versus k ($k = 1, 2, 4, \dots, n$) for this model and
                the compared one (:func:`rlobj.eval.plots.plot_pass_at_k`).
            min_correct: correct samples that put a problem in a model's support (solve-rate table).

        Returns:
            ``{"label", "metrics", "counts", "compare_label", "compare_metrics", "compare_counts",
            "comparison" (a SolveRateComparison or None), "plot" (path or None)}``.
        """
        from rlobj.eval.table import format_table

        if datamodule is None:
            raise RlobjInputError("eval: a data section (RLDataModule) is required")
        if compare is not None and not os.path.isfile(compare):
            raise FileNotFoundError(f"compare: no such file {compare!r} (a .ckpt checkpoint or a counts .json)")
        if cot_judge is not None and not callable(cot_judge):
            raise RlobjInputError(f"cot_judge: expected a callable judge(prompt, response) -> bool, got {cot_judge!r}")
        if isinstance(min_correct, bool) or not isinstance(min_correct, int) or min_correct < 1:
            raise RlobjInputError(f"min_correct: expected an int >= 1, got {min_correct!r}")
        model.build()
        datamodule.bind_tokenizer(model.tokenizer)
        label = "model"
        if ckpt_path is not None:
            label = _load_checkpoint(model, ckpt_path, "ckpt_path")
        records = datamodule.eval_records()
        metrics, counts, prompts, cot_counts = _evaluate_counts(model, records, cot_judge)
        report: dict[str, Any] = {"label": label, "metrics": metrics, "counts": counts,
                                  "compare_label": None, "compare_metrics": None, "compare_counts": None,
                                  "comparison": None, "plot": None}
        rows = [(label, metrics)]
        if counts_path is not None:
            payload = {"label": label, "eval_samples": model.cfg.evaluation.samples, "metrics": metrics,
                       "counts": {k: list(v) for k, v in counts.items()}, "prompts": prompts}
            if cot_counts is not None:
                payload["cot_counts"] = {k: list(v) for k, v in cot_counts.items()}
            directory = os.path.dirname(os.path.abspath(counts_path))
            os.makedirs(directory, exist_ok=True)
            with open(counts_path, "w") as handle:
                json.dump(payload, handle, indent=1)
        if compare is not None:
            if compare.endswith(".json"):
                other_label, other_metrics, other_counts = _read_counts(compare)
                if other_metrics is None:  # a bare counts mapping: pass@k from the counts
                    from rlobj.eval.plots import pass_at_k_curve

                    pairs = list(other_counts.values())
                    ks = [int(k) for k in model.cfg.evaluation.k if int(k) <= min(n for n, _ in pairs)]
                    other_metrics = {f"pass@{k}": v for k, v in pass_at_k_curve(pairs, ks).items()}
            else:
                other_label = _load_checkpoint(model, compare, "compare")
                if other_label == label:
                    other_label = f"{other_label} (compare)"
                other_metrics, other_counts, _, _ = _evaluate_counts(model, records, cot_judge)
            from rlobj.eval.solve_rates import compare_solve_rates

            try:
                comparison = compare_solve_rates(other_counts, counts, min_correct=min_correct)
            except ValueError as error:
                raise RlobjInputError(f"compare: {error}") from error
            report.update(compare_label=other_label, compare_metrics=other_metrics,
                          compare_counts=other_counts, comparison=comparison)
            rows = [(other_label, other_metrics), (label, metrics)]
        columns = [c for c in metrics if c.startswith(("pass@", "maj@", "cot_pass@"))]
        print(format_table(rows, columns), flush=True)
        if report["comparison"] is not None:
            print("", flush=True)
            print(report["comparison"].table(labels=(report["compare_label"], label)), flush=True)
        if plot is not None:
            from rlobj.eval.plots import pass_at_k_curve, plot_pass_at_k

            curves = {}
            for name, table in ((report["compare_label"], report["compare_counts"]), (label, counts)):
                if table:
                    pairs = [tuple(v) for v in table.values()]
                    curves[name] = pass_at_k_curve(pairs, _powers_of_two(min(n for n, _ in pairs)))
            report["plot"] = str(plot_pass_at_k(curves, plot))
            print(f"pass@k plot: {report['plot']}", flush=True)
        return report

    def export(self, model: RLModule, datamodule: RLDataModule | None = None, ckpt_path: str | None = None,
               export_dir: str = "policy", push_to_hub: str | None = None) -> str:
        """Export the policy (from ``ckpt_path`` if given) as a Hugging Face model directory.

        Writes ``save_pretrained`` weights (LoRA merged), the tokenizer and a model card with the
        objective and the run's numbers (:func:`rlobj.train.export.export_policy`).

        Args:
            model: the module (built here).
            datamodule: unused (the config's data section may stay as it is).
            ckpt_path: a checkpoint written by ``rlobj fit``; without it the untrained policy.
            export_dir: the output folder. Default ``policy``.
            push_to_hub: a Hub repository id to upload to; nothing is uploaded without it.

        Returns:
            The output folder.
        """
        from rlobj.train.export import export_policy

        model.build()
        if ckpt_path is not None:
            _load_checkpoint(model, ckpt_path, "ckpt_path")
        path = export_policy(model, export_dir, push_to_hub=push_to_hub)
        print(f"exported the policy to {path}", flush=True)
        return str(path)


def _problem_key(index: int, prompt: str) -> str:
    line = str(prompt).strip().splitlines()[0] if str(prompt).strip() else ""
    return f"{index}: {line[:40]}"


def _powers_of_two(n: int) -> list[int]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def _load_checkpoint(model: RLModule, path: str, key: str) -> str:
    """Load a ``rlobj fit`` checkpoint into ``model`` (and its engine); returns the file name."""
    checkpoint = load_checkpoint_file(path, key)
    if "state_dict" not in checkpoint:
        raise RlobjInputError(f"{key}: {path!r} is not a Lightning checkpoint (no 'state_dict')")
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    model.push_weights()
    return os.path.basename(path)


def _evaluate_counts(model: RLModule, records: list[dict], cot_judge) -> tuple:
    """Metrics, per-problem ``(n, c)``, prompts and (with a judge) per-problem ``(n, d)``."""
    from rlobj.eval.cot import cot_pass_at_k, judge_samples

    samples: list[dict] = []
    metrics = model.evaluate(records, samples_out=samples)
    counts, prompts, cot_counts = {}, {}, None
    for index, sample in enumerate(samples):
        key = _problem_key(index, sample["prompt"])
        counts[key] = (int(sample["n"]), int(sample["c"]))
        prompts[key] = sample["prompt"]
    if cot_judge is not None:
        cot_counts = {}
        sums = dict.fromkeys(model.cfg.evaluation.k, 0.0)
        for index, sample in enumerate(samples):
            verdicts = judge_samples(cot_judge, sample["prompt"], sample["responses"], sample["correct"])
            cot_counts[_problem_key(index, sample["prompt"])] = (int(sample["n"]), int(sum(verdicts)))
            for k in sums:
                sums[k] += cot_pass_at_k(sample["correct"], verdicts, int(k))
        metrics.update({f"cot_pass@{k}": value / max(len(samples), 1) for k, value in sums.items()})
    return metrics, counts, prompts, cot_counts


def _read_counts(path: str) -> tuple[str, dict | None, dict[str, tuple[int, int]]]:
    """A counts JSON: ``{"counts": {problem: [n, c]}, "label", "metrics"}`` or a bare mapping."""
    try:
        with open(path) as handle:
            payload = json.load(handle)
    except json.JSONDecodeError as error:
        raise RlobjInputError(f"compare: {path!r} is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise RlobjInputError(f"compare: {path!r} must hold a JSON object, got {type(payload).__name__}")
    table = payload.get("counts", payload)
    if not isinstance(table, dict) or not table:
        raise RlobjInputError(f"compare: {path!r} holds no per-problem counts ({{problem: [n, c]}})")
    counts = {}
    for problem, value in table.items():
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)
                and value[0] >= 1 and 0 <= value[1] <= value[0]):
            raise RlobjInputError(f"compare: {path!r}: counts[{problem!r}] must be [n, c] with ints "
                                  f"n >= 1 and 0 <= c <= n, got {value!r}")
        counts[str(problem)] = (value[0], value[1])
    label = str(payload.get("label") or os.path.basename(path))
    metrics = payload.get("metrics") if isinstance(payload.get("metrics"), dict) else None
    return label, metrics, counts


class RlobjCLI(LightningCLI):
    """LightningCLI with the ``eval`` subcommand and early, key-naming config errors."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "eval": {"model", "datamodule"},
            "export": {"model", "datamodule"},
        }

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--torch_threads", type=int | None, default=None,
                            help="torch.set_num_threads before anything runs (CPU runs on shared cores: 1)")

    def parse_arguments(self, parser, args) -> None:
        moved = _moved_keys(sys.argv[1:] if args is None else args)
        if moved:
            print("rlobj: error: invalid configuration: " + "; ".join(moved) + " (RLModule's settings are "
                  "grouped: policy, rollout, update, optimizer, lr_scheduler, warmup, evaluation; see "
                  "rlobj.train.config)", file=sys.stderr)
            raise SystemExit(2)
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        from rlobj.train.config_checks import check_config

        section = self.config.get(self.subcommand) if self.subcommand else self.config
        problem = check_config(section)
        if problem is not None:
            print(f"rlobj: error: invalid configuration: {problem}", file=sys.stderr)
            raise SystemExit(2)
        threads = self._get(self.config, "torch_threads")
        if threads is not None:
            if threads < 1:
                print(f"rlobj: error: invalid configuration: torch_threads: expected an int >= 1, got {threads}",
                      file=sys.stderr)
                raise SystemExit(2)
            torch.set_num_threads(threads)

    def _nested_cause(self, error: BaseException):
        """jsonargparse hides the error of a ``class_path`` object given to an untyped argument
        (``model.scorer``, ``model.verifier``) behind ``unexpected keyword argument
        'scorer.class_path'``: build that object again to report its own error under its key."""
        import re

        from rlobj.ops.errors import import_dotted

        found = re.search(r"unexpected keyword argument '(\w+)\.class_path'", str(error))
        section = self.config.get(self.subcommand) if self.subcommand else self.config
        if found is None or section is None:
            return error
        name = found.group(1)
        try:
            spec = section["model"][name]
            init_args = section["model"].get(f"{name}.init_args") or spec.get("init_args") or {}
            cls = import_dotted(str(spec["class_path"]), f"model.{name}.class_path")
            cls(**dict(vars(init_args) if hasattr(init_args, "__dict__") else init_args))
        except Exception as real:  # noqa: BLE001 - the error to report
            return f"model.{name}: {real}"
        return error

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> L.Trainer:
        """``enable_progress_bar`` unset: Lightning's bar (rich when installed) on a terminal, none in
        logs (where :class:`~rlobj.train.ProgressPrinter` prints plain lines)."""
        from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

        from rlobj.train import callbacks as rlobj_callbacks

        terminal = rlobj_callbacks.is_terminal()
        if config.get("enable_progress_bar") is None:
            config["enable_progress_bar"] = terminal
        configured = [*(config.get("callbacks") or []), *callbacks]
        if (config["enable_progress_bar"] and terminal and _has_rich()
                and not any(isinstance(c, ProgressBar) for c in configured)):
            callbacks = [*callbacks, RichProgressBar()]
        return super()._instantiate_trainer(config, callbacks)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (RlobjInputError, FileNotFoundError, KeyError, ValueError, TypeError) as error:
            cause = error
            while cause.__cause__ is not None and not isinstance(cause, (RlobjInputError, FileNotFoundError)):
                cause = cause.__cause__
            cause = self._nested_cause(cause)
            print(f"rlobj: error: invalid configuration: {cause}", file=sys.stderr)
            raise SystemExit(2) from error


def _moved_keys(args) -> list[str]:
    """``model.<key> moved to model.<place>`` for every flat key of rlobj 0.1 in ``args``."""
    import yaml

    from rlobj.train.config import MOVED_KEYS

    def old(key, value) -> bool:  # ``optimizer`` is still a key, but no longer a name
        return key in MOVED_KEYS and (key != "optimizer" or value in ("adamw", "sgd"))

    found: list[str] = []
    if isinstance(args, dict):
        model = args.get("model")
        return [f"model.{k} moved to model.{MOVED_KEYS[k]}" for k, v in (model or {}).items()
                if isinstance(model, dict) and old(k, v)]
    args = [str(a) for a in args]
    for index, arg in enumerate(args):
        path = None
        if arg == "--config" and index + 1 < len(args):
            path = args[index + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg.startswith("--model."):
            key, _, value = arg[len("--model."):].partition("=")
            if "." not in key and old(key, value):
                found.append(f"--model.{key} moved to --model.{MOVED_KEYS[key]}")
        if path is not None and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    config = yaml.safe_load(handle)
            except (OSError, yaml.YAMLError):
                continue  # the parser reports unreadable files itself
            model = config.get("model") if isinstance(config, dict) else None
            if isinstance(model, dict):
                found += [f"{path}: model.{k} moved to model.{MOVED_KEYS[k]}" for k, v in model.items() if old(k, v)]
    return found


def main(args=None) -> None:
    """Entry point of the ``rlobj`` console script (``sys.exit(main())``: returns None)."""
    run(args)


def run(args=None) -> "RlobjCLI":
    """Run the CLI on ``args`` and return it (its ``model`` and ``trainer`` after the run)."""
    return RlobjCLI(RLModule, RLDataModule, trainer_class=RlobjTrainer, args=args, auto_configure_optimizers=False,
             save_config_kwargs={"overwrite": True}, parser_kwargs={"parser_mode": "omegaconf"}
             if _has_omegaconf() else {})


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _has_omegaconf() -> bool:
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        return False
    return False


if __name__ == "__main__":
    main()
