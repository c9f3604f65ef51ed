"""Handles on published calls: `.id`, `.status`, `.result(timeout=)`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from task_contracts import Contract

from ._outcome import decode_outcome
from ._progress import Progress, progress_from_record
from ._runtime import Runtime

R = TypeVar("R")


class BaseHandle(Generic[R]):
    """What sync and async handles share: the call's identity; they differ only in how they wait."""

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


class TaskHandle(BaseHandle[R]):
    """A published call. Wait for it with `result()`; look at it with `status`.

    >>> handle = client.add.submit(4, 7)
    >>> handle.result(timeout=5)
    11
    """

    __slots__ = ()

    @property
    def status(self) -> str:
        """Celery's state: PENDING (also for unknown ids), STARTED, SUCCESS, FAILURE, ..."""
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

    def ready(self) -> bool:
        """True once the task has succeeded, failed or been revoked."""
        return self.status in ("SUCCESS", "FAILURE", "REVOKED")

    def result(self, timeout: float | None = None) -> R:
        """Wait at most `timeout` seconds (default: the contract's bound) for the validated result.

        Raises `TaskTimeout` (the task may still run; call again later), `TaskFailed`,
        `UnknownTask`, `ContractMismatch`, `OutcomeUnknown` or `BrokerUnavailable`.
        """
        bound = self._timeout if timeout is None else timeout
        record = self._runtime.wait(self._contract.name, self._id, bound)
        value: R = decode_outcome(self._contract, self._id, record)
        return value

    def outcome(self) -> Any:
        """The raw stored record, or None while pending (for tools and debugging)."""
        return self._runtime.fetch(self._contract.name, self._id)
