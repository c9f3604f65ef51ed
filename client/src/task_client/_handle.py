"""Handles on published calls: `.id`, `.status`, `.progress`, `.result(timeout=)`.

`BaseHandle` holds every operation once, as steps (`_steps`); `TaskHandle` runs them in the
caller's thread and `AsyncTaskHandle` awaits them. A new operation is one steps method here and a
one-line method on each face.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar

from task_contracts import Contract

from ._outcome import decode_outcome
from ._progress import Progress, progress_from_record
from ._runtime import Runtime
from ._steps import Steps, run_async, run_sync

R = TypeVar("R")

#: Celery states after which a task will not change any more.
FINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED")


class BaseHandle(Generic[R]):
    """What sync and async handles share: the call's identity and what each operation does."""

    __slots__ = ("_contract", "_id", "_runtime", "_timeout")

    def __init__(self, runtime: Runtime, contract: Contract[..., R], task_id: str, timeout: float) -> None:
        self._runtime = runtime
        self._contract = contract
        self._id = task_id
        self._timeout = timeout

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

    # -- the operations, once ------------------------------------------------------
    def _result_steps(self, timeout: float | None) -> Steps[R]:
        bound = self._timeout if timeout is None else timeout
        record = yield from self._runtime.wait(self._contract.name, self._id, bound)
        value: R = decode_outcome(self._contract, self._id, record)
        return value

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
        """Wait at most `timeout` seconds (default: the contract's bound) for the validated result.

        Raises `TaskTimeout` (the task may still run; call again later), `TaskFailed`,
        `UnknownTask`, `ContractMismatch`, `OutcomeUnknown`, `BrokerUnavailable` or `ClientClosed`.
        """
        return run_sync(self._runtime.producer, self._result_steps(timeout))

    @property
    def status(self) -> str:
        """Celery's state: PENDING (also for unknown ids), STARTED, SUCCESS, FAILURE, ..."""
        return run_sync(self._runtime.producer, self._status_steps())

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
        """Celery's state: PENDING (also for unknown ids), STARTED, SUCCESS, FAILURE, ..."""
        return await run_async(self._runtime.producer, self._status_steps())

    async def progress(self) -> Progress | None:
        """The latest progress the task reported, or None (no report yet, or finished)."""
        return await run_async(self._runtime.producer, self._progress_steps())

    async def ready(self) -> bool:
        """True once the task has succeeded, failed or been revoked."""
        return await self.status() in FINAL_STATES

    async def outcome(self) -> Any:
        """The raw stored record, or None while pending (for tools and debugging)."""
        return await run_async(self._runtime.producer, self._outcome_steps())
