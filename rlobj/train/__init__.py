"""Training: the LightningModule, DataModule, callbacks and the ``rlobj`` CLI."""

from rlobj.data.tasks import (
    AdditionTask,
    ExactAnswer,
    GeneratedTask,
    LeveledAddition,
    TaskSource,
)
from rlobj.ops.tokenizer import build_char_tokenizer
from rlobj.train.callbacks import CompletionsTable, EvalTable, MetricPlots, ProgressPrinter
from rlobj.train.config import (
    EvalConfig,
    PolicyConfig,
    RolloutConfig,
    UpdateConfig,
    WarmupConfig,
    WarmupSchedule,
)
from rlobj.train.data_loops import DataLoop, DataStrategy, FixedStream
from rlobj.train.data_strategies import DifficultyCurriculum, DomainMixture, HardFocus, HintScaffold
from rlobj.train.datamodule import PromptStream, RLDataModule
from rlobj.train.export import ExportPolicy, export_policy
from rlobj.train.hf_data import DatasetTask, JsonlTask
from rlobj.train.interleave import SFTInterleave
from rlobj.train.module import RLModule, build_train_objective, score_completions
from rlobj.train.multiturn import EnvironmentScorer, MultiTurnSampler
from rlobj.train.process_reward import PRMScorer, ProcessRewardModel
from rlobj.train.prompt_stats import PromptStats
from rlobj.train.scorers import RewardFunctions, VerifierScorer
from rlobj.train.synthesis import WeaknessSynthesis

__all__ = [
    "AdditionTask",
    "CompletionsTable",
    "DatasetTask",
    "EvalConfig",
    "EnvironmentScorer",
    "ExportPolicy",
    "EvalTable",
    "ExactAnswer",
    "GeneratedTask",
    "JsonlTask",
    "MetricPlots",
    "MultiTurnSampler",
    "PolicyConfig",
    "ProgressPrinter",
    "RewardFunctions",
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
    "export_policy",
    "score_completions",
    "DataLoop",
    "DataStrategy",
    "FixedStream",
    "DifficultyCurriculum",
    "HintScaffold",
    "HardFocus",
    "DomainMixture",
    "LeveledAddition",
    "PromptStats",
    "WeaknessSynthesis",
    "SFTInterleave",
    "PRMScorer",
    "ProcessRewardModel",
]
