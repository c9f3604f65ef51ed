"""Implementations of `task_contracts.reports`."""

from __future__ import annotations

import time

from task_contracts import reports

from .._progress import report_progress
from .._registry import implements


@implements(reports.count_to)
def count_to(n: int, delay: float = 0.05) -> int:
    for step in range(1, n + 1):
        time.sleep(delay)  # stands for real work
        report_progress(step, n, f"counted to {step}")
    return n
