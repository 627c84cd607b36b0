"""Training: the LightningModule, DataModule, callbacks and the ``rlobj`` CLI."""

from rlobj.registry import REGISTRY, register
from rlobj.terms.supervised import sft

if "sft" not in REGISTRY:  # the supervised term, until rlobj.terms exports it
    register("sft", sft)

from rlobj.train.callbacks import EvalTable, MetricPlots, ProgressPrinter  # noqa: E402
from rlobj.train.datamodule import PromptStream, RLDataModule  # noqa: E402
from rlobj.train.module import RLModule, score_completions  # noqa: E402
from rlobj.train.tasks import (  # noqa: E402
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
    "build_char_tokenizer",
    "score_completions",
]
