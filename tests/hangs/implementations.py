"""Implementations of `tests.hangs.contracts`. Markers live in `TASK_DIAGNOSTICS_DIR`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from task_server import implements

from . import contracts


def _answer(key: str) -> str:
    if not key.startswith(contracts.HANGING_KEY):
        return f"value-of-{key}"
    marker = Path(os.environ["TASK_DIAGNOSTICS_DIR"]) / key.removeprefix(contracts.HANGING_KEY)
    marker.with_suffix(".started").touch()
    deadline = time.monotonic() + contracts.HANG_LIMIT
    while not marker.with_suffix(".release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a hung read, as far as the worker can tell
    return f"value-of-{key}"


@implements(contracts.lookup)
def lookup(key: str) -> str:
    return _answer(key)


@implements(contracts.ping)
def ping() -> str:
    return "pong"


@implements(contracts.crunch)
def crunch(key: str) -> str:
    return _answer(key)


@implements(contracts.size)
def size(text: str) -> int:
    return len(text)
