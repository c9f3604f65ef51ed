"""Implementations of `tests.policies.contracts`. Markers live in `TASK_DIAGNOSTICS_DIR`."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from task_server import implements

from ..catalog import tasks as diagnostic_tasks
from . import contracts


def _starts(marker: str) -> int:
    path = Path(os.environ["TASK_DIAGNOSTICS_DIR"]) / f"{marker}.starts"
    with path.open("a") as file:
        file.write(f"{os.getpid()} {time.time()}\n")
    return len(path.read_text().splitlines())


@implements(contracts.flaky)
def flaky(marker: str, failures: int) -> int:
    run = _starts(marker)
    if run <= failures:
        raise contracts.Flaky(f"run {run} of {marker} failed")
    return run


@implements(contracts.flaky_light)
def flaky_light(marker: str, failures: int) -> int:
    return flaky(marker, failures)


@implements(contracts.withdraw)
def withdraw(amount: int) -> int:
    if amount > 100:
        raise contracts.InsufficientFunds(f"the account holds 100, {amount} asked")
    return 100 - amount


@implements(contracts.span)
def span(seconds: float) -> tuple[str, float, float]:
    start = time.time()
    time.sleep(seconds)
    return f"{socket.gethostname()}:{os.getppid()}:{os.getpid()}", start, time.time()


@implements(contracts.single)
def single(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@implements(contracts.tick)
def tick() -> float:
    return time.time()


@implements(contracts.hold)
def hold(marker: str, seconds: float) -> int:
    return diagnostic_tasks.hold(marker, seconds)


@implements(contracts.hold_steady)
def hold_steady(marker: str, seconds: float) -> int:
    return diagnostic_tasks.hold(marker, seconds)


@implements(contracts.stamp)
def stamp(marker: str) -> float:
    _starts(marker)
    return time.time()
