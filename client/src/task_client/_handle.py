"""Handles on published calls: `.id`, `.status`, `.result(timeout=)`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from task_contracts import Contract
from task_contracts.wire import ATTEMPT_FIELD, RETRY_STATE

from ._cancel import CancelResult
from ._outcome import decode_outcome
from ._progress import Progress, progress_from_record
from ._runtime import Runtime
from ._schedule import Schedule

R = TypeVar("R")


class BaseHandle(Generic[R]):
    """What sync and async handles share: the call's identity; they differ only in how they wait."""

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

    def _bound(self, timeout: float | None) -> float:
        # The wait bound of a scheduled call counts from when it is due, not from publication.
        bound = self._timeout if timeout is None else timeout
        return bound + (self._schedule.due_in() if self._schedule else 0.0)

    def _cancel(self) -> CancelResult:
        return self._runtime.cancel(self._contract.name, self._id, schedule=self._schedule)


class TaskHandle(BaseHandle[R]):
    """A published call. Wait for it with `result()`; look at it with `status`.

    >>> handle = client.add.submit(4, 7)
    >>> handle.result(timeout=5)
    11
    """

    __slots__ = ()

    @property
    def status(self) -> str:
        """Celery's state: PENDING (also for unknown ids and scheduled calls), RETRY (see `attempt`),
        SUCCESS, FAILURE, REVOKED (cancelled or expired), ..."""
        record = self._runtime.fetch(self._contract.name, self._id)
        return "PENDING" if record is None else str(record.get("status", "PENDING"))

    @property
    def progress(self) -> Progress | None:
        """The latest progress the task reported, or None (no report yet, or finished).

        While a `result()` wait runs in another thread this reads the watcher's memory of the
        last published report; otherwise it reads the stored record once.
        """
        watcher = self._runtime.watcher
        record = watcher.latest(self._id)
        if record is None and not watcher.is_watching(self._id):
            record = self._runtime.fetch(self._contract.name, self._id)
        return progress_from_record(record)

    @property
    def attempt(self) -> int:
        """The attempt the call is on: 1 until its contract's `Retry` runs it again, then the attempt
        running or due next (2, 3, ...); once finished, the attempt that finished it."""
        record = self._runtime.fetch(self._contract.name, self._id) or {}
        stored = record.get(ATTEMPT_FIELD)
        if not isinstance(stored, int):
            return 1
        return stored + 1 if record.get("status") == RETRY_STATE else stored

    def cancel(self) -> CancelResult:
        """Cancel the call; return what that did (a `CancelResult`), never raising for a finished call.

        Not started (queued or scheduled): it never runs, and every waiter gets `TaskCancelled` at
        once. Running: an interruptible contract's call is stopped (`TERMINATED`); any other runs to
        its end (`RUNNING`) but is not retried or run again. Finished: nothing changes (`FINISHED`).
        Raises `BrokerUnavailable` if the backend or broker cannot be reached.
        """
        return self._cancel()

    def ready(self) -> bool:
        """True once the task has succeeded, failed or been revoked."""
        return self.status in ("SUCCESS", "FAILURE", "REVOKED")

    def result(self, timeout: float | None = None) -> R:
        """Wait at most `timeout` seconds (default: the contract's bound) for the validated result;
        for a call scheduled later (`countdown`, `eta`) the bound counts from when it is due.

        Raises `TaskTimeout` (the task may still run; call again later), `TaskFailed` (or the
        contract's declared error type), `TaskCancelled`, `TaskExpired`, `UnknownTask`,
        `ContractMismatch`, `OutcomeUnknown` or `BrokerUnavailable`.
        """
        bound = self._bound(timeout)
        record = self._runtime.wait(self._contract.name, self._id, bound, self._schedule)
        value: R = decode_outcome(self._contract, self._id, record)
        return value

    def outcome(self) -> Any:
        """The raw stored record, or None while pending (for tools and debugging)."""
        return self._runtime.fetch(self._contract.name, self._id)
