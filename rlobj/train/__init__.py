"""Training: the LightningModule, DataModule, callbacks and the ``rlobj`` CLI."""

from rlobj.train.callbacks import EvalTable, MetricPlots, ProgressPrinter
from rlobj.train.config import (
    EvalConfig,
    PolicyConfig,
    RolloutConfig,
    UpdateConfig,
    WarmupConfig,
    WarmupSchedule,
)
from rlobj.train.datamodule import PromptStream, RLDataModule
from rlobj.train.module import RLModule, build_train_objective, score_completions
from rlobj.train.scorers import VerifierScorer
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
    "EvalConfig",
    "EvalTable",
    "ExactAnswer",
    "GeneratedTask",
    "JsonlTask",
    "MetricPlots",
    "PolicyConfig",
    "ProgressPrinter",
    "PromptStream",
    "RLDataModule",
    "RLModule",
    "RolloutConfig",
    "TaskSource",
    "UpdateConfig",
    "VerifierScorer",
    "WarmupConfig",
    "WarmupSchedule",
    "build_train_objective",
    "build_char_tokenizer",
    "score_completions",
]
