"""`report_progress` outside a worker: a no-op, so implementations stay testable as functions."""

from __future__ import annotations

import pytest

from task_server import report_progress
from task_server.tasks.reports import count_to


def test_report_progress_outside_a_task_does_nothing() -> None:
    report_progress(1, 2, "fine")
    assert count_to(3, delay=0) == 3


def test_negative_progress_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        report_progress(-1, 2)
