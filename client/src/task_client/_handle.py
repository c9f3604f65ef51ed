"""Handles on published calls: `.id`, `.status`, `.progress`, `.result(timeout=)`.

`BaseHandle` holds every operation once, as steps (`_steps`); `TaskHandle` runs them in the
caller's thread and `AsyncTaskHandle` awaits them. A new operation is one steps method here and a
one-line method on each face.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar

from task_contracts import Contract
from task_contracts.wire import ATTEMPT_FIELD, RETRY_STATE

from ._cancel import CancelResult
from ._outcome import decode_outcome
from ._progress import Progress, progress_from_record
from ._runtime import Runtime
from ._schedule import Schedule
from ._steps import Steps, run_async, run_sync

R = TypeVar("R")

#: Celery states after which a task will not change any more.
FINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED")


class BaseHandle(Generic[R]):
    """What sync and async handles share: the call's identity and what each operation does."""

    __slots__ = ("_contract", "_id", "_runtime", "_schedule", "_timeout")

    def __init__(
        self,
        runtime: Runtime,
        contract: Contract[..., R],
        task_id: str,
        timeout: float,
        schedule: Schedule | None = None,
    ) -> None:
        self._runtime = runtime
        self._contract = contract
        self._id = task_id
        self._timeout = timeout
        self._schedule = schedule

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._contract.name} {self._id}>"

    @property
    def id(self) -> str:
        """The Celery task id."""
        return self._id

    @property
    def name(self) -> str:
        """The contract's wire name."""
        return self._contract.name

    @property
    def schedule(self) -> Schedule | None:
        """When the call is due and expires, as published (None for an unscheduled or re-attached call)."""
        return self._schedule

    # -- the operations, once ------------------------------------------------------
    def _result_steps(self, timeout: float | None) -> Steps[R]:
        # The wait bound of a scheduled call counts from when it is due, not from publication.
        bound = (self._timeout if timeout is None else timeout) + (self._schedule.due_in() if self._schedule else 0.0)
        limit = self._contract.timeout if self._contract.cpu_bound else None
        record = yield from self._runtime.wait(
            self._contract.name, self._id, bound, schedule=self._schedule, hard_limit=limit
        )
        value: R = decode_outcome(self._contract, self._id, record)
        return value

    def _cancel_steps(self) -> Steps[CancelResult]:
        return (yield from self._runtime.cancel(self._contract.name, self._id, schedule=self._schedule))

    def _attempt_steps(self) -> Steps[int]:
        record = (yield from self._runtime.read(self._contract.name, self._id)) or {}
        stored = record.get(ATTEMPT_FIELD)
        if not isinstance(stored, int):
            return 1
        return stored + 1 if record.get("status") == RETRY_STATE else stored

    def _status_steps(self) -> Steps[str]:
        record = yield from self._runtime.read(self._contract.name, self._id)
        return "PENDING" if record is None else str(record.get("status", "PENDING"))

    def _progress_steps(self) -> Steps[Progress | None]:
        # While a wait runs, the watcher remembers the last published report: no read needed.
        watcher = self._runtime.watcher
        record = watcher.latest(self._id)
        if record is None and not watcher.is_watching(self._id):
            record = yield from self._runtime.read(self._contract.name, self._id)
        return progress_from_record(record)

    def _outcome_steps(self) -> Steps[Any]:
        return (yield from self._runtime.read(self._contract.name, self._id))


class TaskHandle(BaseHandle[R]):
    """A published call. Wait for it with `result()`; look at it with `status` and `progress`.

    >>> handle = client.add.submit(4, 7)
    >>> handle.result(timeout=5)
    11
    """

    __slots__ = ()

    def result(self, timeout: float | None = None) -> R:
        """Wait at most `timeout` seconds (default: the contract's bound) for the validated result;
        for a call scheduled later (`countdown`, `eta`) the bound counts from when it is due.

        Raises `TaskTimeout` (the task may still run; call again later), `TaskFailed` (or the
        contract's declared error type), `TaskCancelled`, `TaskExpired`, `UnknownTask`,
        `ContractMismatch`, `OutcomeUnknown`, `BrokerUnavailable` or `ClientClosed`.
        """
        return run_sync(self._runtime.producer, self._result_steps(timeout))

    @property
    def status(self) -> str:
        """Celery's state: PENDING (also for unknown ids and calls not due yet), RETRY (see
        `attempt`), SUCCESS, FAILURE, REVOKED (cancelled or expired), ..."""
        return run_sync(self._runtime.producer, self._status_steps())

    @property
    def attempt(self) -> int:
        """The attempt the call is on: 1 until its contract's `Retry` runs it again, then the attempt
        running or due next (2, 3, ...); once finished, the attempt that finished it."""
        return run_sync(self._runtime.producer, self._attempt_steps())

    def cancel(self) -> CancelResult:
        """Cancel the call; return what that did (a `CancelResult`), never raising for a finished call.

        Not started (queued or scheduled): it never runs, and every waiter gets `TaskCancelled` at
        once. Running: an interruptible contract's call is stopped (`TERMINATED`); any other runs to
        its end (`RUNNING`) but is not retried or run again. Finished: nothing changes (`FINISHED`).
        Raises `BrokerUnavailable` if the backend or broker cannot be reached.
        """
        return run_sync(self._runtime.producer, self._cancel_steps())

    @property
    def progress(self) -> Progress | None:
        """The latest progress the task reported, or None (no report yet, or finished)."""
        return run_sync(self._runtime.producer, self._progress_steps())

    def ready(self) -> bool:
        """True once the task has succeeded, failed or been revoked."""
        return self.status in FINAL_STATES

    def outcome(self) -> Any:
        """The raw stored record, or None while pending (for tools and debugging)."""
        return run_sync(self._runtime.producer, self._outcome_steps())


class AsyncTaskHandle(BaseHandle[R]):
    """A published call, awaited: `await handle` or `await handle.result(timeout=5)`.

    The same operations as `TaskHandle`, awaited: `await handle.status()`, `await handle.progress()`.
    """

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, R]:
        return self.result().__await__()

    async def result(self, timeout: float | None = None) -> R:
        """Wait at most `timeout` seconds (default: the contract's bound) for the validated result.

        Raises the same errors as `TaskHandle.result`, after the same final read of the backend.
        """
        return await run_async(self._runtime.producer, self._result_steps(timeout))

    async def status(self) -> str:
        """Celery's state, as `TaskHandle.status`."""
        return await run_async(self._runtime.producer, self._status_steps())

    async def attempt(self) -> int:
        """The attempt the call is on, as `TaskHandle.attempt`."""
        return await run_async(self._runtime.producer, self._attempt_steps())

    async def cancel(self) -> CancelResult:
        """Cancel the call, as `TaskHandle.cancel`."""
        return await run_async(self._runtime.producer, self._cancel_steps())

    async def progress(self) -> Progress | None:
        """The latest progress the task reported, or None (no report yet, or finished)."""
        return await run_async(self._runtime.producer, self._progress_steps())

    async def ready(self) -> bool:
        """True once the task has succeeded, failed or been revoked."""
        return await self.status() in FINAL_STATES

    async def outcome(self) -> Any:
        """The raw stored record, or None while pending (for tools and debugging)."""
        return await run_async(self._runtime.producer, self._outcome_steps())
