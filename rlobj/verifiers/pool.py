r"""Scoring completions in worker processes with per-item timeouts.

A verifier may hang (a pathological SymPy simplification), raise, exhaust memory, kill its own
process, or return garbage (NaN, a string, a value outside the reward range). None of these may
stop training or shift a reward onto another sample. :class:`VerifierPool` therefore

- runs each item in one of ``workers`` long-lived processes (``forkserver`` start method by
  default, so the trainer's threads are never forked), one item per worker at a time;
- gives every item a wall-clock ``timeout`` counted from the moment its worker has unpickled the
  task; a worker past its deadline is killed with SIGKILL and replaced;
- caps each worker's address space with ``RLIMIT_AS`` (``memory_limit_mb`` above its size after
  imports), so a huge allocation fails fast with ``MemoryError`` instead of taking the machine's
  memory;
- keys every result by the item's index (the worker echoes the index and the parent checks it
  against the item that worker was given), so completion order never matters;
- turns every failure into reward 0.0 with a status (``"timeout"``, ``"error"``, ``"invalid"``)
  that :class:`ScoreResult` counts for logging.
"""

import collections
import importlib
import multiprocessing
import multiprocessing.connection
import pickle
import resource
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from rlobj.verifiers._isolation import sweep_orphans
from rlobj.verifiers.base import Sample, Verifier, validate_reward

STATUSES = ("ok", "timeout", "error", "invalid")


@dataclass(frozen=True)
class ScoreResult:
    """Rewards for a batch, in submission order, with what happened to each item.

    Attributes:
        rewards: one float per item; 0.0 wherever the status is not ``"ok"``.
        statuses: ``"ok"``, ``"timeout"``, ``"error"`` (raised, crashed the worker, could not be
            pickled) or ``"invalid"`` (returned a non-number, NaN/inf, or a value outside the
            pool's ``reward_range``).
        messages: empty for ``"ok"``, else a short reason.
        seconds: wall time spent on each item.
    """

    rewards: tuple[float, ...]
    statuses: tuple[str, ...]
    messages: tuple[str, ...]
    seconds: tuple[float, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Number of items per status (every status present, zeros included)."""
        counter = collections.Counter(self.statuses)
        return {status: counter.get(status, 0) for status in STATUSES}

    def metrics(self, prefix: str = "verifier/") -> dict[str, float]:
        """Loggable numbers: counts of timeouts/errors/invalid, failure fraction, mean seconds.

        Example:
            >>> ScoreResult((1.0, 0.0), ("ok", "timeout"), ("", "t"), (0.1, 2.0)).metrics()["verifier/timeouts"]
            1.0
        """
        counts = self.counts
        total = max(len(self.statuses), 1)
        return {
            f"{prefix}timeouts": float(counts["timeout"]),
            f"{prefix}errors": float(counts["error"]),
            f"{prefix}invalid": float(counts["invalid"]),
            f"{prefix}failed_fraction": (len(self.statuses) - counts["ok"]) / total,
            f"{prefix}seconds_mean": sum(self.seconds) / total,
        }


def _virtual_memory_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _worker_main(
    connection, parent_sys_path: list[str], memory_limit_mb: int, reward_range: tuple[float, float]
) -> None:
    sys.path[:] = parent_sys_path
    if memory_limit_mb > 0:
        # Headroom above what the worker already maps after its imports (importing rlobj pulls in
        # torch, whose virtual size alone is over 1 GiB), so the limit means "may allocate this much".
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        limit = _virtual_memory_bytes() + (memory_limit_mb << 20)
        resource.setrlimit(
            resource.RLIMIT_AS,
            (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard),
        )
    cached_blob, cached_verifier = None, None
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        index = -1
        started = time.monotonic()
        try:
            index, verifier_blob, item_blob = pickle.loads(message)
            if verifier_blob != cached_blob:
                cached_verifier, cached_blob = pickle.loads(verifier_blob), verifier_blob
            completion, sample = pickle.loads(item_blob)
            connection.send_bytes(pickle.dumps(("started", index)))
            started = time.monotonic()
            value = cached_verifier(completion, sample)
            status, reward, note = validate_reward(value, reward_range)
        except MemoryError:
            status, reward, note = "error", 0.0, f"MemoryError (worker limit {memory_limit_mb} MiB)"
        except Exception as error:  # noqa: BLE001 - any verifier failure becomes reward 0
            lines = traceback.format_exception_only(type(error), error)
            status, reward, note = "error", 0.0, "".join(lines).strip()[-500:]
        try:
            connection.send_bytes(
                pickle.dumps(("done", index, status, reward, note, time.monotonic() - started))
            )
        except (EOFError, OSError):
            return


class _Worker:
    def __init__(self, context, memory_limit_mb: int, reward_range: tuple[float, float]) -> None:
        self.connection, child_end = multiprocessing.Pipe(duplex=True)
        # Reference the worker by its canonical module path so it unpickles in the child even when
        # this file was imported under another name (doctest collection, importlib mode).
        target = importlib.import_module("rlobj.verifiers.pool")._worker_main
        self.process = context.Process(
            target=target,
            args=(child_end, list(sys.path), memory_limit_mb, reward_range),
            daemon=True,
        )
        self.process.start()
        child_end.close()
        self.index: int | None = None
        self.deadline = 0.0
        self.sent_at = 0.0

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.connection.close()


class VerifierPool:
    r"""Worker processes that score ``(completion, sample)`` pairs with per-item timeouts.

    Args:
        workers: number of worker processes (>= 1). Default 2.
        timeout: seconds one item may run before its worker is killed and it scores 0
            (status ``"timeout"``). Default 10.
        memory_limit_mb: how much a worker may allocate beyond its size after start-up, MiB
            (0: no limit); enforced as ``RLIMIT_AS`` soft limit = size after imports + this.
            Default 2048. Subprocesses a verifier starts (the code sandbox) set their own limits.
        reward_range: inclusive range a valid reward must lie in. Default ``(0.0, 1.0)``.
        start_method: multiprocessing start method. Default ``"forkserver"``.
        setup_timeout: seconds a worker may take to start and unpickle a task (imports included)
            before it is killed. Default 60.

    Verifiers and samples must pickle (module-level functions and dataclasses do; lambdas do
    not). Use as a context manager or call :meth:`close`.

    Example:
        >>> from rlobj.verifiers import ExactMatch
        >>> with VerifierPool(workers=1, timeout=30) as pool:
        ...     pool.score(ExactMatch(), ["4", "5"], [{"answer": "4"}, {"answer": "4"}]).rewards
        (1.0, 0.0)
    """

    def __init__(
        self,
        workers: int = 2,
        timeout: float = 10.0,
        memory_limit_mb: int = 2048,
        reward_range: tuple[float, float] = (0.0, 1.0),
        start_method: str = "forkserver",
        setup_timeout: float = 60.0,
    ) -> None:
        if not (isinstance(workers, int) and workers >= 1):
            raise ValueError(
                f"VerifierPool: argument 'workers' must be an int >= 1, got {workers!r}"
            )
        _check_timeout(timeout, "timeout")
        _check_timeout(setup_timeout, "setup_timeout")
        if not (isinstance(memory_limit_mb, int) and memory_limit_mb >= 0):
            raise ValueError(
                f"VerifierPool: argument 'memory_limit_mb' must be an int >= 0, got {memory_limit_mb!r}"
            )
        low, high = reward_range
        if not low <= high:
            raise ValueError(
                f"VerifierPool: argument 'reward_range' must be (low, high) with low <= high, got {reward_range!r}"
            )
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"VerifierPool: argument 'start_method' must be one of {multiprocessing.get_all_start_methods()}, got {start_method!r}"
            )
        self.workers = workers
        self.timeout = float(timeout)
        self.memory_limit_mb = memory_limit_mb
        self.reward_range = (float(low), float(high))
        self.setup_timeout = float(setup_timeout)
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # Import the verifiers (and what rlobj pulls in) once in the fork server, so a new or
            # replaced worker is a cheap fork instead of a fresh interpreter doing imports. Takes
            # effect only if the fork server has not started yet.
            self._context.set_forkserver_preload(["__main__", "rlobj.verifiers"])
        self._slots: list[_Worker | None] = [None] * workers
        self._closed = False
        self.restarts = 0
        """How many workers were killed or died and were replaced so far."""

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker. The pool cannot be used afterwards."""
        for slot, worker in enumerate(self._slots):
            if worker is not None:
                try:
                    worker.connection.send_bytes(b"")
                except (OSError, EOFError):
                    pass
                worker.process.join(timeout=1)
                worker.kill()
                self._slots[slot] = None
        self._closed = True

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    def _worker(self, slot: int) -> _Worker:
        worker = self._slots[slot]
        if worker is None or not worker.process.is_alive():
            if worker is not None:
                worker.kill()
                self.restarts += 1
            worker = _Worker(self._context, self.memory_limit_mb, self.reward_range)
            self._slots[slot] = worker
        return worker

    def _replace(self, slot: int) -> None:
        worker = self._slots[slot]
        if worker is not None:
            worker.kill()
            self.restarts += 1
            # a code sandbox the worker was running dies with it (PDEATHSIG); its cgroup stays
            sweep_orphans()
        self._slots[slot] = None

    def score(
        self,
        verifier: Verifier,
        completions: Sequence[str],
        samples: Sequence[Sample],
        timeout: float | None = None,
    ) -> ScoreResult:
        """Score ``verifier(completions[i], samples[i])`` for every ``i``; results in input order.

        Args:
            verifier: a picklable :class:`~rlobj.verifiers.Verifier`.
            completions: decoded responses.
            samples: the task record of each response (same length as ``completions``).
            timeout: per-item limit for this call, default the pool's ``timeout``.
        """
        if self._closed:
            raise RuntimeError("VerifierPool: score() called after close()")
        if not callable(verifier):
            raise TypeError(
                f"VerifierPool.score: argument 'verifier' must be callable, got {type(verifier).__name__}"
            )
        if len(completions) != len(samples):
            raise ValueError(
                f"VerifierPool.score: arguments 'completions' and 'samples' must have the same length, "
                f"got {len(completions)} and {len(samples)}"
            )
        limit = self.timeout if timeout is None else float(timeout)
        _check_timeout(limit, "timeout")
        try:
            verifier_blob = pickle.dumps(verifier)
        except Exception as error:
            raise TypeError(
                f"VerifierPool.score: argument 'verifier' ({verifier!r:.80}) cannot be pickled ({error}); "
                "use a module-level function or a dataclass, not a lambda or closure"
            ) from error

        count = len(completions)
        rewards = [0.0] * count
        statuses = ["error"] * count
        messages = [""] * count
        seconds = [0.0] * count
        pending = collections.deque(range(count))

        def finish(index: int, status: str, reward: float, note: str, elapsed: float) -> None:
            rewards[index], statuses[index], messages[index], seconds[index] = (
                reward,
                status,
                note,
                elapsed,
            )

        busy: dict[int, _Worker] = {}
        while pending or busy:
            for slot in range(self.workers):
                if slot in busy or not pending:
                    continue
                index = pending.popleft()
                try:
                    item_blob = pickle.dumps((completions[index], samples[index]))
                except Exception as error:
                    finish(
                        index, "error", 0.0, f"completion or sample cannot be pickled: {error}", 0.0
                    )
                    continue
                worker = self._worker(slot)
                try:
                    worker.connection.send_bytes(pickle.dumps((index, verifier_blob, item_blob)))
                except (OSError, EOFError) as error:
                    finish(index, "error", 0.0, f"could not send to worker: {error}", 0.0)
                    self._replace(slot)
                    continue
                worker.index, worker.sent_at = index, time.monotonic()
                worker.deadline = worker.sent_at + self.setup_timeout
                busy[slot] = worker
            if not busy:
                continue
            now = time.monotonic()
            wait_for = max(0.0, min(worker.deadline for worker in busy.values()) - now)
            handles = {}
            for slot, worker in busy.items():
                handles[worker.connection] = slot
                handles[worker.process.sentinel] = slot
            ready = multiprocessing.connection.wait(list(handles), timeout=wait_for)
            for slot in sorted({handles[handle] for handle in ready}):
                worker = busy[slot]
                died = False
                while True:
                    try:
                        if not worker.connection.poll():
                            died = not worker.process.is_alive()
                            break
                        message = pickle.loads(worker.connection.recv_bytes())
                    except (EOFError, OSError, pickle.UnpicklingError):
                        died = True
                        break
                    if (
                        message[1] != worker.index
                    ):  # cannot happen by construction; never misattribute
                        died = True
                        break
                    if message[0] == "started":
                        worker.deadline = time.monotonic() + limit
                        continue
                    _, index, status, reward, note, elapsed = message
                    finish(index, status, reward, note, elapsed)
                    del busy[slot]
                    break
                if died and slot in busy:
                    worker.process.join(timeout=2)  # a worker that just exited is not reaped yet
                    code = worker.process.exitcode
                    finish(
                        worker.index,
                        "error",
                        0.0,
                        f"worker process died (exit code {code})"
                        if code is not None
                        else "worker broke the result protocol; killed",
                        time.monotonic() - worker.sent_at,
                    )
                    del busy[slot]
                    self._replace(slot)
            now = time.monotonic()
            for slot, worker in list(busy.items()):
                if now >= worker.deadline:
                    finish(
                        worker.index,
                        "timeout",
                        0.0,
                        f"no result within {limit} s; worker killed",
                        now - worker.sent_at,
                    )
                    del busy[slot]
                    self._replace(slot)
        return ScoreResult(tuple(rewards), tuple(statuses), tuple(messages), tuple(seconds))


def _check_timeout(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and value < float("inf")):
        raise ValueError(
            f"VerifierPool: argument {name!r} must be a positive finite number of seconds, got {value!r}"
        )


def score_batch(
    verifier: Verifier,
    completions: Sequence[str],
    samples: Sequence[Sample],
    timeout: float = 10.0,
    workers: int = 2,
    **pool_options,
) -> ScoreResult:
    """Score one batch in a fresh :class:`VerifierPool` (closed afterwards).

    For repeated scoring (every training step) keep one pool open instead: starting workers costs
    imports.

    Example:
        >>> from rlobj.verifiers import NumericMatch
        >>> score_batch(NumericMatch(), ["x = 2.0", "no idea"], [{"answer": "2"}] * 2, workers=1).statuses
        ('ok', 'ok')
    """
    with VerifierPool(workers=workers, timeout=timeout, **pool_options) as pool:
        return pool.score(verifier, completions, samples)
