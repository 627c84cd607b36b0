"""Training: the LightningModule, DataModule, callbacks and the ``rlobj`` CLI."""

from rlobj.train.callbacks import EvalTable, MetricPlots, ProgressPrinter
from rlobj.train.datamodule import PromptStream, RLDataModule
from rlobj.train.module import RLModule, build_train_objective, score_completions
from rlobj.train.tasks import (
    AdditionTask,
    ExactAnswer,
    GeneratedTask,
    JsonlTask,
    TaskSource,
    build_char_tokenizer,
)

__all__ = [
    "AdditionTask",
    "EvalTable",
    "ExactAnswer",
    "GeneratedTask",
    "JsonlTask",
    "MetricPlots",
    "ProgressPrinter",
    "PromptStream",
    "RLDataModule",
    "RLModule",
    "TaskSource",
    "build_train_objective",
    "build_char_tokenizer",
    "score_completions",
]
