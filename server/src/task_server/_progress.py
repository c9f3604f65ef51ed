"""Progress reports from inside a running task, stored and published as a PROGRESS record."""

from __future__ import annotations

from task_contracts.wire import PROGRESS_DONE, PROGRESS_MESSAGE, PROGRESS_STATE, PROGRESS_TOTAL

from ._internals.worker import running_task


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
    task.update_state(
        state=PROGRESS_STATE,
        meta={PROGRESS_DONE: done, PROGRESS_TOTAL: total, PROGRESS_MESSAGE: message},
    )
