r"""Data loops: a strategy that picks (and may rewrite) the next prompts from per-prompt statistics.

The :class:`~rlobj.train.datamodule.RLDataModule` streams prompts in a fixed order. With a
``strategy`` (YAML ``data.strategy``), each RL step's prompts come from a :class:`DataLoop`
instead:

1. the loop builds the step's **fresh** candidates: the records the plain stream would give
   at this step on *all* ranks (``count = prompts_per_step x world_size`` of them, each tagged
   with ``prompt_id`` = its index in the source);
2. the :class:`DataStrategy` picks ``count`` records from them, from prompts seen before (its
   own pool) or from elsewhere, reading :class:`~rlobj.train.prompt_stats.PromptStats`; it may
   rewrite a record (a hint, a simpler version) and keeps the ``prompt_id`` of the prompt
   the statistics should credit;
3. each rank trains on its slice of the global selection; after scoring, every rank's rewards
   update the statistics on every rank (gathered in rank order), so all ranks agree on the next
   selection.

Selection runs when the module consumes the batch (``training_step``), not when Lightning
prefetches it, so step ``k`` sees the statistics of every step before it. The statistics and the
strategy's state are saved in checkpoints (``checkpoint["rlobj"]["data_loop"]``): a resumed run
picks the same prompts as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.tokenizer import check_characters
from rlobj.train.prompt_stats import PromptStats

__all__ = ["DataLoop", "DataStrategy", "FixedStream", "Selection", "with_prompt_id"]


def with_prompt_id(record: dict, pid: str) -> dict:
    """A copy of ``record`` with ``prompt_id`` set to ``pid`` unless it already has one."""
    out = dict(record)
    out.setdefault("prompt_id", str(pid))
    return out


@dataclass
class Selection:
    """What a strategy sees when it picks the prompts of one step.

    Attributes:
        step: the data step (index of the batch).
        count: number of records to return (all ranks together).
        fresh: the plain stream's ``count`` records of this step, tagged with ``prompt_id``.
        stats: the run's :class:`~rlobj.train.prompt_stats.PromptStats`.
        source: the training :class:`~rlobj.data.tasks.TaskSource` (``record(index)``).
    """

    step: int
    count: int
    fresh: list[dict]
    stats: PromptStats
    source: TaskSource


class DataStrategy:
    """Base of data strategies: ``select(selection) -> records`` (``selection.count`` of them).

    Strategies with state (a pool of prompts, cursors) implement ``state_dict`` /
    ``load_state_dict`` with plain data; ``observe(records, rewards, step)`` is called after the
    statistics were updated from a scored step (all ranks' rows, in rank order).
    """

    def select(self, selection: Selection) -> list[dict]:  # pragma: no cover - subclasses override
        raise TypeError(f"{type(self).__name__} does not define select()")

    def observe(self, records: list[dict], rewards: list[float], step: int) -> None:
        return None

    def share(self, records: list[dict], rewards: list[float]) -> list:
        """Plain data this rank's scored rows hold for the strategy beyond the statistics (a
        proposal a scorer validated...). Strategies that override it get every rank's items, in
        rank order, in :meth:`absorb` (one extra all-gather per step; not called otherwise)."""
        return []

    def absorb(self, items: list, step: int) -> None:
        """Receive every rank's :meth:`share` items of ``step`` (same order on every rank)."""
        return None

    def metrics(self) -> dict[str, float]:
        """Named floats logged with the step (``data/...``)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class FixedStream(DataStrategy):
    """The plain stream's records, unchanged (the baseline a strategy is compared with)."""

    def select(self, selection: Selection) -> list[dict]:
        return list(selection.fresh)


class DataLoop:
    """A strategy, the statistics it reads and the source, driven by the module once per RL step.

    Args:
        strategy: the :class:`DataStrategy`.
        source: the training source.
        per_rank: prompts per rank per step.
        stats: the statistics (default ``PromptStats()``).
    """

    def __init__(self, strategy: DataStrategy, source: TaskSource, per_rank: int, stats: PromptStats | None = None):
        if not isinstance(strategy, DataStrategy):
            raise RlobjInputError(f"data.strategy: expected a rlobj.train.data_loops.DataStrategy, got {strategy!r}")
        self.strategy, self.source, self.per_rank = strategy, source, per_rank
        self.stats = stats if stats is not None else PromptStats()
        self.tokenizer = None
        self.last_selection: list[str] = []

    def fresh(self, step: int, count: int) -> list[dict]:
        """The plain stream's records of ``step`` on all ranks, tagged with their source index."""
        first = step * count
        return [with_prompt_id(self.source.record(i), str(i)) for i in range(first, first + count)]

    def records(self, step: int, rank: int = 0, world: int = 1) -> list[dict]:
        """This rank's share of the strategy's selection for ``step``."""
        count = self.per_rank * world
        chosen = self.strategy.select(Selection(step, count, self.fresh(step, count), self.stats, self.source))
        if not isinstance(chosen, list) or len(chosen) != count:
            got = len(chosen) if isinstance(chosen, list) else type(chosen).__name__
            raise RlobjInputError(f"data.strategy {type(self.strategy).__name__}: select() must return a list of "
                                  f"{count} records (prompts_per_step x ranks), got {got}")
        for index, record in enumerate(chosen):
            if not isinstance(record, dict) or "prompt" not in record or "prompt_id" not in record:
                raise RlobjInputError(f"data.strategy {type(self.strategy).__name__}: record {index} needs 'prompt' "
                                      f"and 'prompt_id', got {record!r}")
        check_characters(self.tokenizer, chosen, ("prompt",))
        self.last_selection = [str(r["prompt_id"]) for r in chosen]
        return chosen[rank * self.per_rank:(rank + 1) * self.per_rank]

    def observe(self, step: int, records: list[dict], rewards: list[float]) -> dict[str, float]:
        """Update the statistics from this rank's scored rows (gathered from all ranks); the metrics."""
        from rlobj.train.prompt_stats import gather_updates

        updates = gather_updates(self.stats.batch_updates(records, rewards, step))
        self.stats.apply(updates)
        self.strategy.observe([{"prompt_id": u[0], "domain": u[1], "hint_fraction": u[2]} for u in updates],
                              [sum(u[3]) / len(u[3]) for u in updates], step)
        if type(self.strategy).share is not DataStrategy.share:  # the same on every rank
            self.strategy.absorb(gather_updates(self.strategy.share(records, rewards)), step)
        metrics = {"data/prompts_tracked": float(len(self.stats))}
        metrics.update({f"data/{k}": float(v) for k, v in self.strategy.metrics().items()})
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.state_dict(), "strategy": self.strategy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state.get("stats") or {})
        self.strategy.load_state_dict(state.get("strategy") or {})
