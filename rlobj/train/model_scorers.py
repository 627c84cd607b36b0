r"""Scorers backed by models: the shared base, loading, and a sequence-classification reward model.

A :class:`ModelScorer` turns each row (the record's prompt, the decoded response, the record)
into a value and a status. The statuses are the verifier pool's (:data:`rlobj.verifiers.pool.STATUSES`):

* ``"ok"``: the model gave a value; it is the row's reward;
* ``"invalid"``: the model answered but its answer could not be read (a judge's verdict that
  does not parse, a response without the part to score);
* ``"timeout"``: the scorer's time budget ran out before the row was scored;
* ``"error"``: scoring raised (the message is kept in ``last_notes``).

A row that is not ``"ok"`` gets **no reward**: its :class:`~rlobj.train.stages.Score` has reward 0
and the field ``scored = 0.0`` (weighted compositions, :class:`~rlobj.train.scorers.RewardFunctions`,
then leave it out of the sum, as TRL leaves out ``None``), and it is counted in the step's metrics
exactly as the verifier pool counts its items: ``<name>/timeouts``, ``<name>/errors``,
``<name>/invalid``, ``<name>/failed_fraction``, ``<name>/seconds_mean``, plus ``<name>/mean``
and ``<name>/std`` over the scored rows. Training never stops on a broken judge.

Models are loaded from a local Hugging Face directory (or a hub id already in the local cache)
on first use and placed on the trainer's device (the policy's), in ``dtype``.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, wait
from typing import Any

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Score, Scorer

__all__ = ["ModelScorer", "PendingScores", "SequenceClassifierRM", "DTYPES", "record_prompt", "nanstd", "strip_thinking"]

#: Parameter dtypes a model-backed scorer accepts.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def nanstd(values: Sequence[float]) -> float:
    """Standard deviation of the non-NaN ``values`` with Bessel's correction (TRL's ``nanstd``); NaN
    with fewer than two values.

    Example:
        >>> round(nanstd([1.0, float("nan"), 3.0]), 4)
        1.4142
    """
    present = [v for v in values if not math.isnan(v)]
    if len(present) < 2:
        return math.nan
    mean = sum(present) / len(present)
    return math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1))


def record_prompt(record: Mapping[str, Any]) -> str | list:
    """The prompt of a record: its message list (conversational rows) or its text."""
    messages = record.get("prompt_messages")
    return messages if isinstance(messages, list) else record["prompt"]


def strip_thinking(text: str, marker: str) -> str | None:
    """The text after the last ``marker`` (a reasoning model's final answer), None without one.

    Example:
        >>> strip_thinking("<think>a</think> answer", "</think>")
        ' answer'
        >>> strip_thinking("no tag", "</think>") is None
        True
    """
    cut = text.rfind(marker)
    return None if cut < 0 else text[cut + len(marker):]


def _check_dtype(dtype: str, owner: str) -> None:
    if dtype not in DTYPES:
        raise RlobjInputError(f"{owner}.dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")


def _positive(value, key: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise RlobjInputError(f"{key}: expected a positive number, got {value!r}")


class _DaemonPool:
    """A fixed set of daemon worker threads that run submitted calls (first in, first out).

    Unlike :class:`concurrent.futures.ThreadPoolExecutor`, whose threads the interpreter joins at
    exit, a judge call that hangs here never keeps the process alive; at most ``workers`` calls
    run at once, so abandoned (timed-out) calls cannot pile up threads."""

    def __init__(self, workers: int, name: str):
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, name=f"{name}-judge-{i}", daemon=True)
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while True:
            item = self.tasks.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(error)

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self.tasks.put((future, fn, args))
        return future

    def close(self) -> None:
        for _ in self.threads:
            self.tasks.put(None)


class PendingScores:
    """Chunks of one :meth:`ModelScorer.submit_texts` call in flight (see :meth:`ModelScorer.collect_texts`)."""

    def __init__(self, rows: int, chunks: list[tuple[slice, Future]], started: float):
        self.rows, self.chunks, self.started = rows, chunks, started


class ModelScorer(Scorer):
    """Base of the model-backed scorers: batching, the time budget, statuses and their metrics.

    Subclasses implement :meth:`score_rows` (values for a chunk of rows; ``None`` marks a row whose
    answer could not be read). Chunks of ``batch_size`` rows run on ``concurrency`` worker
    threads of the scorer, off the caller's thread: :meth:`submit_texts` returns at once and
    :meth:`collect_texts` waits for them, so the caller can do other work in between
    (:class:`~rlobj.train.scorers.RewardFunctions` computes its plain reward functions while its
    judges run). ``timeout`` is a **wall-clock budget for the whole batch**, counted from the
    submission: at the deadline the caller stops waiting; rows of chunks not finished get status
    ``"timeout"`` and no reward, chunks not yet started are cancelled, and a chunk still running
    is abandoned (it finishes on its worker thread, its result is dropped; a later batch queues
    behind it and that wait counts against the later batch's budget). A scorer therefore never
    holds a step longer than ``timeout`` plus the time to assemble the scores.

    Args:
        name: the metric prefix (default: the class name in lower case).
        batch_size: rows per model call.
        timeout: seconds for the whole batch (None: no budget).
        concurrency: chunks that may run at the same time (worker threads). 1 runs the chunks in
            order; more helps engines that overlap calls (a vLLM server, several devices) and
            makes sampled (``temperature > 0``) verdicts depend on thread timing.
    """

    def __init__(self, name: str | None = None, batch_size: int = 16, timeout: float | None = None,
                 concurrency: int = 1):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise RlobjInputError(f"{type(self).__name__}.batch_size: expected an int >= 1, got {batch_size!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RlobjInputError(f"{type(self).__name__}.concurrency: expected an int >= 1, got {concurrency!r}")
        _positive(timeout, f"{type(self).__name__}.timeout", allow_none=True)
        self.name = name or type(self).__name__.lower()
        self.batch_size, self.timeout, self.concurrency = batch_size, timeout, concurrency
        self.device: torch.device | None = None
        self.last_notes: list[str] = []
        self._pool: _DaemonPool | None = None
        self._load_lock = threading.Lock()

    # --------------------------------------------------------------- to implement
    def score_rows(self, prompts: list, completions: list[str], records: list[dict]) -> list[float | None]:
        raise TypeError(f"{type(self).__name__} does not define score_rows()")  # pragma: no cover

    # --------------------------------------------------------------- shared machinery
    def bind(self, ctx) -> None:
        """Remember the trainer's device (the policy's) for models loaded on first use."""
        if self.device is None and ctx is not None and getattr(ctx, "models", None) is not None:
            self.device = next(ctx.models.policy.parameters()).device

    def _chunk(self, prompts, completions, records) -> tuple[list, float]:
        began = time.monotonic()
        with self._load_lock:  # chunks on several threads load the model once
            self.prepare()
        out = list(self.score_rows(prompts, completions, records))
        return out, time.monotonic() - began

    def prepare(self) -> None:
        """Load what the scorer needs (called on a worker thread before each chunk, under a lock)."""
        load = getattr(self, "load", None)
        if callable(load):
            load()

    def submit_texts(self, completions: list[str], records: list[dict]) -> PendingScores:
        """Start scoring decoded ``completions`` answering ``records`` on the worker threads."""
        if self._pool is None:
            self._pool = _DaemonPool(self.concurrency, self.name)
        prompts = [record_prompt(r) for r in records]
        started, rows = time.monotonic(), len(completions)
        chunks = []
        for begin in range(0, rows, self.batch_size):
            part = slice(begin, min(begin + self.batch_size, rows))
            future = self._pool.submit(self._chunk, prompts[part], list(completions[part]), list(records[part]))
            chunks.append((part, future))
        return PendingScores(rows, chunks, started)

    def collect_texts(self, pending: PendingScores) -> tuple[list[Score], dict[str, float]]:
        """Scores and metrics of a :meth:`submit_texts` call, waiting at most until its deadline."""
        from rlobj.verifiers.pool import ScoreResult

        rows = pending.rows
        values: list[float] = [0.0] * rows
        statuses, notes, seconds = ["timeout"] * rows, [""] * rows, [0.0] * rows
        deadline = None if self.timeout is None else pending.started + self.timeout
        futures = [f for _, f in pending.chunks]
        wait(futures, timeout=None if deadline is None else max(deadline - time.monotonic(), 0.0))
        for part, future in pending.chunks:
            size = part.stop - part.start
            if not future.done():
                started = not future.cancel()
                note = (f"time budget of {self.timeout}s spent: " +
                        ("this row's chunk was still running (abandoned)" if started else "chunk not started"))
                results, spent = [("timeout", 0.0, note)] * size, float(self.timeout or 0.0)
            else:
                try:
                    out, spent = future.result()
                    if len(out) != size:
                        raise ValueError(f"score_rows returned {len(out)} values for {size} rows")
                    results = [("invalid", 0.0, "unreadable answer") if v is None
                               else (("ok", float(v), "") if math.isfinite(float(v))
                                     else ("invalid", 0.0, f"non-finite value {v}")) for v in out]
                except Exception as error:  # noqa: BLE001 - a broken judge never stops training
                    results, spent = [("error", 0.0, f"{type(error).__name__}: {error}")] * size, 0.0
            for offset, (status, value, note) in enumerate(results):
                b = part.start + offset
                statuses[b], values[b], notes[b], seconds[b] = status, value, note, spent / max(size, 1)
        self.last_notes = notes
        result = ScoreResult(tuple(values), tuple(statuses), tuple(notes), tuple(seconds))
        metrics = result.metrics(prefix=f"{self.name}/")
        ok = [v for v, s in zip(values, statuses) if s == "ok"]
        metrics[f"{self.name}/mean"] = sum(ok) / len(ok) if ok else math.nan
        metrics[f"{self.name}/std"] = nanstd(ok)
        scores = [Score(reward=v if s == "ok" else 0.0,
                        fields={"scored": float(s == "ok"), f"{self.name}/value": v if s == "ok" else math.nan})
                  for v, s in zip(values, statuses)]
        return scores, metrics

    def score_texts(self, completions: list[str], records: list[dict]) -> tuple[list[Score], dict[str, float]]:
        """Scores and metrics of decoded ``completions`` answering ``records`` (no trainer needed)."""
        return self.collect_texts(self.submit_texts(completions, records))

    def submit(self, ctx, batch: Batch) -> PendingScores:
        """Start scoring a batch (:meth:`collect` waits for it); the plain :meth:`__call__` does both."""
        self.bind(ctx)
        return self.submit_texts(ctx.decode(batch.rollout), batch.records)

    def collect(self, pending: PendingScores, batch: Batch) -> list[Score]:
        scores, metrics = self.collect_texts(pending)
        batch.metrics.update(metrics)
        return scores

    def __call__(self, ctx, batch: Batch) -> list[Score]:
        return self.collect(self.submit(ctx, batch), batch)

    def close(self) -> None:
        """Stop the worker threads (a running chunk finishes first; nothing waits for it)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"], state["_load_lock"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._load_lock = threading.Lock()

    def target_device(self) -> torch.device:
        return self.device if self.device is not None else torch.device("cpu")


def load_tokenizer(path: str, owner: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise RlobjInputError(f"{owner}.model: cannot load a tokenizer from {path!r} ({error})") from error


class SequenceClassifierRM(ModelScorer):
    r"""A Hugging Face sequence-classification reward model as the scorer (TRL's reward model).

    For a prompt $x$ and response $y$ the reward is the model's first logit,
    $r(x, y) = f_\phi(\mathrm{text}(x, y))_0$, where the text is the reward model's own chat
    template applied to ``prompt_messages + [{"role": "assistant", "content": y}]`` for
    conversational rows (or whenever ``chat_template`` is on and the tokenizer has one), else
    ``prompt + y`` (TRL's ``GRPOTrainer`` does the same). Rows are tokenised with the reward
    model's tokenizer (right padding, truncated to ``max_length``) and scored ``batch_size`` at
    a time, without gradient, on the trainer's device in ``dtype``.

    With ``think_marker`` (RLMT: "Language Models that Think, Chat Better", 2025) only the final answer after the last marker is scored, $r = f_\phi(x,
    y_{\text{answer}})$; a response without the marker gets status ``"invalid"`` (no reward).

    Args:
        model: a local model directory (or a hub id in the local cache) of an
            ``AutoModelForSequenceClassification``.
        dtype: ``float32``, ``bfloat16`` (the usual), ``float16`` or ``float64``.
        chat_template: apply the reward model's chat template when it has one (default True).
        max_length: longest tokenised input in tokens (longer inputs are cut on the right).
        think_marker: score only the text after this marker (RLMT); None scores the whole response.
        name, batch_size, timeout, concurrency: as :class:`ModelScorer`.

    Example (YAML, ``model.scorer``)::

        scorer:
          class_path: rlobj.train.model_scorers.SequenceClassifierRM
          init_args: {model: /models/Skywork-Reward-V2-Llama-3.1-8B, dtype: bfloat16, batch_size: 8}
    """

    def __init__(self, model: str, dtype: str = "bfloat16", chat_template: bool = True, max_length: int = 2048,
                 think_marker: str | None = None, name: str | None = "reward_model", batch_size: int = 16,
                 timeout: float | None = None, concurrency: int = 1):
        super().__init__(name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        if not isinstance(model, str) or not model:
            raise RlobjInputError(f"SequenceClassifierRM.model: expected a model directory, got {model!r}")
        _check_dtype(dtype, "SequenceClassifierRM")
        self.model_path, self.dtype, self.chat_template = model, dtype, chat_template
        self.max_length, self.think_marker = max_length, think_marker
        self.model = None
        self.tokenizer = None

    def load(self) -> None:
        """Load the reward model and its tokenizer (once) onto the trainer's device."""
        if self.model is not None:
            return
        from transformers import AutoModelForSequenceClassification

        self.tokenizer = load_tokenizer(self.model_path, "SequenceClassifierRM")
        try:
            model = AutoModelForSequenceClassification.from_pretrained(self.model_path, dtype=DTYPES[self.dtype])
        except (OSError, ValueError) as error:
            raise RlobjInputError(f"SequenceClassifierRM.model: cannot load {self.model_path!r} ({error})") from error
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.target_device()).eval().requires_grad_(False)

    def text(self, prompt, completion: str) -> str:
        """The reward model's input for one row."""
        has_template = getattr(self.tokenizer, "chat_template", None) is not None
        if isinstance(prompt, list) or (self.chat_template and has_template):
            if not has_template:
                raise RlobjInputError("SequenceClassifierRM: a conversational row needs a reward model tokenizer "
                                      "with a chat_template")
            messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            return self.tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": completion}],
                                                      tokenize=False)
        return prompt + completion

    @torch.no_grad()
    def score_rows(self, prompts, completions, records):
        self.load()
        if self.think_marker is not None:
            answers = [strip_thinking(c, self.think_marker) for c in completions]
        else:
            answers = list(completions)
        asked = [i for i, a in enumerate(answers) if a is not None]
        out: list[float | None] = [None] * len(completions)
        if not asked:
            return out
        texts = [self.text(prompts[i], answers[i]) for i in asked]
        self.tokenizer.padding_side = "right"
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                max_length=self.max_length, add_special_tokens=False)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        logits = self.model(**inputs).logits[:, 0].float().cpu().tolist()
        for i, value in zip(asked, logits):
            out[i] = value
        return out
