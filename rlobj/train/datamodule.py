"""The DataModule: a resumable stream of prompt batches and a fixed evaluation set."""

from typing import Any

import lightning as L
import torch

from rlobj.data.tasks import AdditionTask, TaskSource
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.tokenizer import check_characters
from rlobj.train.data_loops import DataLoop, DataStrategy
from rlobj.train.prompt_stats import PromptStats

__all__ = ["RLDataModule", "PromptStream"]


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PromptStream:
    """Infinite iterable of ``{"step": k, "records": [...]}`` starting at step ``start``.

    Step ``k`` on rank ``r`` of ``w`` holds records ``k*P*w + r*P ... + P - 1`` of the source
    (``P`` prompts per rank), so the stream is a pure function of the step index: resuming needs
    only the step, and ranks never see the same prompt.
    """

    def __init__(self, source: TaskSource, per_rank: int, start: int = 0, rank: int = 0, world: int = 1,
                 tokenizer: Any = None, data_loop: Any = None):
        self.source, self.per_rank, self.start, self.rank, self.world = source, per_rank, start, rank, world
        self.tokenizer, self.data_loop = tokenizer, data_loop

    def batch(self, step: int) -> dict[str, Any]:
        first = (step * self.world + self.rank) * self.per_rank
        records = self.source.records(first, self.per_rank)
        check_characters(self.tokenizer, records)
        if self.data_loop is None:
            return {"step": step, "records": records}
        # the module asks the loop for the RL steps' records when it consumes the batch
        return {"step": step, "records": records, "data_loop": self.data_loop}

    def __iter__(self):
        step = self.start
        while True:
            yield self.batch(step)
            step += 1


class RLDataModule(L.LightningDataModule):
    """Prompts for training and a fixed evaluation set, from :class:`~rlobj.data.tasks.TaskSource` s.

    Args:
        train: source of training prompts (default ``AdditionTask(seed=1)``).
        eval: source of the evaluation set (default ``AdditionTask(seed=2)``: held-out draws).
            Give a held-out split of your own data here (``DatasetTask`` with ``split:
            "train[90%:]"``, or a test file).
        prompts_per_step: prompts per rank per training step (each gets ``group_size`` samples).
        eval_size: number of evaluation records (records ``0 .. eval_size-1`` of ``eval``). A
            source with a length (a file) must hold at least ``eval_size`` rows: a larger
            ``eval_size`` is an error (it would repeat rows), raised when the DataModule is built.
        val_batch_size: evaluation records per validation batch (``rlobj validate``).
        strategy: a :class:`~rlobj.train.data_loops.DataStrategy` that picks each RL step's prompts
            from per-prompt statistics (:mod:`rlobj.train.data_strategies`); None streams
            ``train`` in order.
        stats_window: recent rewards kept per prompt (:class:`~rlobj.train.prompt_stats.PromptStats`).
        success_threshold: a reward at or above it counts as solving the prompt.

    Sources with a ``bind_tokenizer`` method (:class:`~rlobj.train.hf_data.DatasetTask`) get the
    policy's tokenizer before the first batch, for the chat template of conversational prompts.
    """

    def __init__(self, train: TaskSource | None = None, eval: TaskSource | None = None,
                 prompts_per_step: int = 32, eval_size: int = 256, val_batch_size: int = 64,
                 strategy: DataStrategy | None = None, stats_window: int = 16, success_threshold: float = 1.0):
        super().__init__()
        for name, value in (("prompts_per_step", prompts_per_step), ("eval_size", eval_size),
                            ("val_batch_size", val_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        for name, value in (("train", train), ("eval", eval)):
            if value is not None and not isinstance(value, TaskSource):
                raise TypeError(f"{name}: expected a TaskSource, got {type(value).__name__}")
        self.tokenizer = None
        self.train_source = train if train is not None else AdditionTask(seed=1)
        self.eval_source = eval if eval is not None else AdditionTask(seed=2)
        self.prompts_per_step, self.eval_size, self.val_batch_size = prompts_per_step, eval_size, val_batch_size
        self.data_loop = None
        if strategy is not None:
            self.data_loop = DataLoop(strategy, self.train_source, prompts_per_step,
                                      PromptStats(window=stats_window, threshold=success_threshold))
        if hasattr(self.eval_source, "__len__") and eval_size > len(self.eval_source):
            raise RlobjInputError(f"eval_size: {eval_size} is larger than the evaluation data "
                                  f"({len(self.eval_source)} rows in {self.eval_source!r}); set eval_size "
                                  f"<= {len(self.eval_source)} (rows are never repeated)")

    def bind_tokenizer(self, tokenizer) -> None:
        """Hand the policy's tokenizer to the sources that render chat templates; with the
        character tokenizer, every batch's prompts and demonstrations are checked for characters
        it lacks (an error naming them, instead of silent ``<unk>``)."""
        self.tokenizer = tokenizer
        if self.data_loop is not None:
            self.data_loop.tokenizer = tokenizer
        for source in (self.train_source, self.eval_source):
            if hasattr(source, "bind_tokenizer"):
                source.bind_tokenizer(tokenizer)

    def _bind_from_trainer(self) -> None:
        module = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        if getattr(module, "tokenizer", None) is not None:
            self.bind_tokenizer(module.tokenizer)

    def _start(self) -> int:
        trainer = self.trainer
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        return int(getattr(module, "data_position", 0) or 0)

    def train_dataloader(self):
        rank, world = _rank_world()
        self._bind_from_trainer()
        return PromptStream(self.train_source, self.prompts_per_step, self._start(), rank, world,
                            tokenizer=self.tokenizer, data_loop=self.data_loop)

    def eval_records(self, rank: int = 0, world: int = 1) -> list[dict]:
        """This rank's share of the evaluation set (records ``rank, rank + world, ...``)."""
        self._bind_from_trainer()
        records = [self.eval_source.record(i) for i in range(rank, self.eval_size, world)]
        check_characters(self.tokenizer, records, ("prompt",))
        return records

    def val_dataloader(self):
        rank, world = _rank_world()
        records = self.eval_records(rank, world)
        return _Batches([{"records": records[i:i + self.val_batch_size]}
                         for i in range(0, len(records), self.val_batch_size)])


class _Batches:
    """A finite iterable of ready batches (one dataloader, not a list of dataloaders)."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
