"""Misbehaving and slow verifiers for the pool tests (module-level so worker processes can unpickle them)."""

import os
import signal
import time


def sleeps_then_echoes(completion: str, sample: dict) -> float:
    """Sleep ``sample["delay"]`` seconds, then return ``sample["value"]``."""
    time.sleep(sample["delay"])
    return sample["value"]


def sleeps_forever(completion: str, sample: dict) -> float:
    while True:
        time.sleep(3600)


def raises(completion: str, sample: dict) -> float:
    raise RuntimeError("verifier bug")


def allocates_ten_gigabytes(completion: str, sample: dict) -> float:
    block = bytearray(10 * 1024**3)
    return float(len(block) > 0)


def returns_nan(completion: str, sample: dict) -> float:
    return float("nan")


def returns_string(completion: str, sample: dict) -> float:
    return "1.0"  # type: ignore[return-value]


def returns_out_of_range(completion: str, sample: dict) -> float:
    return 7.0


def returns_unpicklable(completion: str, sample: dict) -> float:
    return lambda: 1.0  # type: ignore[return-value]


def kills_its_process(completion: str, sample: dict) -> float:
    os.kill(os.getpid(), signal.SIGKILL)
    return 1.0


def exits(completion: str, sample: dict) -> float:
    os._exit(3)


def misbehaves_by_kind(completion: str, sample: dict) -> float:
    """Dispatch on ``sample["kind"]`` so one batch can mix every failure with good items."""
    return BEHAVIOURS[sample["kind"]](completion, sample)


def good(completion: str, sample: dict) -> float:
    return float(completion == sample["answer"])


BEHAVIOURS = {
    "good": good,
    "sleep_forever": sleeps_forever,
    "raise": raises,
    "allocate_10gb": allocates_ten_gigabytes,
    "nan": returns_nan,
    "string": returns_string,
    "out_of_range": returns_out_of_range,
    "unpicklable": returns_unpicklable,
    "kill": kills_its_process,
    "exit": exits,
}
