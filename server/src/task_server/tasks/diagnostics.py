"""Implementations of `task_contracts.diagnostics`."""

from __future__ import annotations

import time

from task_contracts import diagnostics

from .._registry import implements


@implements(diagnostics.sleep)
def sleep(seconds: float) -> float:
    time.sleep(max(seconds, 0.0))
    return seconds
