"""Progress reports from inside a running task, stored and published as a PROGRESS record."""

from __future__ import annotations

import logging

from task_contracts.wire import PROGRESS_DONE, PROGRESS_MESSAGE, PROGRESS_STATE, PROGRESS_TOTAL

from ._backend import BackendOutOfMemory
from ._internals.worker import running_task

logger = logging.getLogger(__name__)


def report_progress(done: float, total: float | None = None, message: str = "") -> None:
    """Report how far the running task has got; clients see it as `handle.progress`.

    Call it from an `@implements` function; outside a Celery task (a plain call in a
    unit test) it does nothing, so implementations stay testable as functions.

    >>> for step in range(1, n + 1):
    ...     report_progress(step, n, f"step {step}")
    """
    if done < 0 or (total is not None and total < 0):
        raise ValueError(f"progress must not be negative (done={done!r}, total={total!r})")
    task = running_task()
    if task is None or not getattr(task.request, "id", None) or task.request.called_directly:
        return
    try:
        task.update_state(
            state=PROGRESS_STATE,
            meta={PROGRESS_DONE: done, PROGRESS_TOTAL: total, PROGRESS_MESSAGE: message},
        )
    except BackendOutOfMemory as error:
        # A progress report is advisory: a full Redis must not fail the task that reports it (its
        # caller has been told, see `_backend`); the final record meets the same refusal.
        logger.warning("task %s: progress not stored: %s", task.request.id, error)
