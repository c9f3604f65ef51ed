"""Implementations of the test-only diagnostic contracts (`tests.catalog.contracts`): hold a worker
until released, counting starts.

Files live only in `TASK_DIAGNOSTICS_DIR`: `<marker>.starts` gets one line per start and
the hold ends as soon as `<marker>.release` exists (or after `seconds`). Tests watch the first
file to know a task is running, without sleeping, and create the second to let it finish.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from celery import signals

from task_server import ServerError, implements

from . import contracts as diagnostics

DIAGNOSTICS_DIR_ENV = "TASK_DIAGNOSTICS_DIR"
#: Names a task: the worker kills itself (SIGKILL, its whole process group) right after storing
#: that task's result, before acknowledging its message (Celery sends `task_success` in between).
KILL_AFTER_STORE_ENV = "TASK_DIAGNOSTICS_KILL_AFTER_STORE"
_POLL_SECONDS = 0.01
_MARKER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a file name in the directory, never a path
_LONGEST_HOLD = 25.0  # below the contracts' 30 s bound


class DiagnosticsDisabled(ServerError, RuntimeError):
    """The worker has no `TASK_DIAGNOSTICS_DIR`, so diagnostic tasks refuse to run."""


@implements(diagnostics.sleep)
def sleep(seconds: float) -> float:
    time.sleep(max(seconds, 0.0))
    return seconds


@implements(diagnostics.nap)
def nap(seconds: float) -> str:
    time.sleep(max(seconds, 0.0))
    return threading.current_thread().name


@implements(diagnostics.whereabouts)
def whereabouts() -> str:
    return threading.current_thread().name


@implements(diagnostics.hold)
def hold(marker: str, seconds: float) -> int:
    return _hold(marker, seconds)


@implements(diagnostics.hold_once)
def hold_once(marker: str, seconds: float) -> int:
    return _hold(marker, seconds)


def _hold(marker: str, seconds: float) -> int:
    if not _MARKER.match(marker):
        raise ValueError(f"marker {marker!r} must be 1 to 64 letters, digits, '_' or '-'")
    if not 0 <= seconds <= _LONGEST_HOLD:
        raise ValueError(f"seconds must be between 0 and {_LONGEST_HOLD:g}, got {seconds!r}")
    directory = _directory()
    starts_file = directory / f"{marker}.starts"
    with starts_file.open("a") as starts:
        starts.write(f"{os.getpid()}\n")
    starts_so_far = len(starts_file.read_text().splitlines())
    release = directory / f"{marker}.release"
    deadline = time.monotonic() + seconds
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
    return starts_so_far


def _directory() -> Path:
    value = os.environ.get(DIAGNOSTICS_DIR_ENV)
    if not value:
        raise DiagnosticsDisabled(f"diagnostic tasks are disabled on this worker: {DIAGNOSTICS_DIR_ENV} is not set")
    return Path(value)


@implements(diagnostics.echo)
def echo(text: str) -> str:
    return text


@implements(diagnostics.echo_v2)
def echo_v2(text: str, times: int) -> list[str]:
    return [text] * times


def _kill_after_store(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) == os.environ.get(KILL_AFTER_STORE_ENV):
        os.killpg(os.getpgrp(), signal.SIGKILL)


if os.environ.get(KILL_AFTER_STORE_ENV):
    signals.task_success.connect(_kill_after_store, weak=False)
