"""The ``rlobj`` command: ``rlobj fit | validate | eval --config file.yaml`` (LightningCLI).

The YAML has the usual LightningCLI sections: ``trainer`` (strategy, devices, precision,
max_steps, callbacks, logger), ``model`` (the :class:`~rlobj.train.RLModule` arguments; the
objective is a list of terms with their arguments, built by :func:`rlobj.registry.build_objective`)
and ``data`` (the :class:`~rlobj.train.RLDataModule` and its task sources, ``class_path`` /
``init_args``). Everything is validated when the classes are built, before any model weight is
loaded: an unknown term, an argument of the wrong type or a missing dataset file stops the command
with a message naming the key. ``--print_config`` prints the resolved configuration.

``rlobj eval`` samples ``eval_samples`` answers per evaluation problem and prints pass@k / maj@k
(optionally from a checkpoint, ``--ckpt_path``).
"""

import os
import sys

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI

from rlobj.ops.errors import RlobjInputError
from rlobj.train.datamodule import RLDataModule
from rlobj.train.module import RLModule

__all__ = ["RlobjTrainer", "RlobjCLI", "main"]


class RlobjTrainer(L.Trainer):
    """Lightning's Trainer plus ``eval``: pass@k / maj@k of a model on the evaluation set."""

    def eval(self, model: RLModule, datamodule: RLDataModule | None = None, ckpt_path: str | None = None) -> dict:
        """Evaluate ``model`` (weights from ``ckpt_path`` if given) and print a one-row table.

        Args:
            model: the module (built lazily here).
            datamodule: provides ``eval_records``.
            ckpt_path: a checkpoint written by ``rlobj fit``.
        """
        from rlobj.eval.table import format_table

        if datamodule is None:
            raise RlobjInputError("eval: a data section (RLDataModule) is required")
        model.build()
        label = "model"
        if ckpt_path is not None:
            if not os.path.isfile(ckpt_path):
                raise FileNotFoundError(f"ckpt_path: no such file {ckpt_path!r}")
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            model.on_load_checkpoint(checkpoint)
            model.load_state_dict(checkpoint["state_dict"])
            label = os.path.basename(ckpt_path)
        result = model.evaluate(datamodule.eval_records())
        columns = [c for c in result if c.startswith(("pass@", "maj@"))]
        print(format_table([(label, result)], columns), flush=True)
        return result


class RlobjCLI(LightningCLI):
    """LightningCLI with the ``eval`` subcommand and early, key-naming config errors."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "eval": {"model", "datamodule"},
        }

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--torch_threads", type=int | None, default=None,
                            help="torch.set_num_threads before anything runs (CPU runs on shared cores: 1)")

    def before_instantiate_classes(self) -> None:
        threads = self._get(self.config, "torch_threads")
        if threads is not None:
            if threads < 1:
                print(f"rlobj: error: invalid configuration: torch_threads: expected an int >= 1, got {threads}",
                      file=sys.stderr)
                raise SystemExit(2)
            torch.set_num_threads(threads)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (RlobjInputError, FileNotFoundError, KeyError, ValueError, TypeError) as error:
            cause = error
            while cause.__cause__ is not None and not isinstance(cause, (RlobjInputError, FileNotFoundError)):
                cause = cause.__cause__
            print(f"rlobj: error: invalid configuration: {cause}", file=sys.stderr)
            raise SystemExit(2) from error


def main(args=None) -> None:
    """Entry point of the ``rlobj`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    RlobjCLI(RLModule, RLDataModule, trainer_class=RlobjTrainer, args=args, auto_configure_optimizers=False,
             save_config_kwargs={"overwrite": True}, parser_kwargs={"parser_mode": "omegaconf"}
             if _has_omegaconf() else {})


def _has_omegaconf() -> bool:
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        return False
    return False


if __name__ == "__main__":
    main()
