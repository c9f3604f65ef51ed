"""`TaskClient`: the contracts of `task_contracts` as typed methods, called by wire name."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from task_contracts import CATALOG, Contract, ContractCatalog, diagnostics, math, redact_url, reports, resolve_urls

from ._aio import AsyncTaskClient
from ._cancel import CancelResult
from ._errors import UnknownTask
from ._inspect import WorkerInfo, ask_workers
from ._remote import RemoteTask
from ._runtime import Runtime
from ._settings import ClientSettings

P = ParamSpec("P")
R = TypeVar("R")


class _Bound(Generic[P, R]):
    """Class attribute that gives each client instance its typed `RemoteTask`."""

    def __init__(self, contract: Contract[P, R]) -> None:
        self.contract = contract

    @overload
    def __get__(self, client: None, owner: type[Any]) -> _Bound[P, R]: ...
    @overload
    def __get__(self, client: TaskClient, owner: type[Any]) -> RemoteTask[P, R]: ...
    def __get__(self, client: TaskClient | None, owner: type[Any]) -> _Bound[P, R] | RemoteTask[P, R]:
        if client is None:
            return self
        return client.task(self.contract)


class TaskClient:
    """Calls tasks by wire name through Celery's `send_task`; never imports server code.

    URLs resolve as: argument, then `TASK_BROKER_URL` / `TASK_RESULT_BACKEND`, then
    `redis://127.0.0.1:6379/0` (the backend defaults to the broker URL).

    >>> with TaskClient() as client:
    ...     client.add(4, 7)
    11
    """

    add = _Bound(math.add)
    mul = _Bound(math.mul)
    xsum = _Bound(math.xsum)
    div = _Bound(math.div)
    count_to = _Bound(reports.count_to)
    sleep = _Bound(diagnostics.sleep)
    hold = _Bound(diagnostics.hold)
    hold_once = _Bound(diagnostics.hold_once)

    def __init__(
        self,
        broker_url: str | None = None,
        result_backend: str | None = None,
        *,
        connect_timeout: float = 1.0,
        socket_timeout: float = 2.0,
        publish_retries: int = 1,
        catalog: ContractCatalog = CATALOG,
    ) -> None:
        self.settings = ClientSettings(
            urls=resolve_urls(broker_url, result_backend),
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            publish_retries=publish_retries,
        )
        self.catalog = catalog
        self._runtime = Runtime(self.settings)
        self._tasks: dict[str, RemoteTask[..., Any]] = {}

    def __repr__(self) -> str:
        return f"<TaskClient broker={redact_url(self.settings.urls.broker_url)!r}>"

    def __enter__(self) -> TaskClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @cached_property
    def aio(self) -> AsyncTaskClient:
        """The same tasks for asyncio, sharing this client's connections: `await client.aio.add(4, 7)`."""
        return AsyncTaskClient(self)

    def close(self) -> None:
        """Close connections and stop the result thread; waiting calls fail."""
        self._runtime.close()

    def task(self, contract: Contract[P, R]) -> RemoteTask[P, R]:
        """The remote task for any contract, including ones outside the default catalog."""
        cached = self._tasks.get(contract.name)
        if cached is not None and cached.contract is contract:
            return cast("RemoteTask[P, R]", cached)
        remote = RemoteTask(self._runtime, contract)
        self._tasks[contract.name] = remote
        return remote

    def cancel(self, task_id: str) -> CancelResult:
        """Cancel a call by id, of any contract; see `TaskHandle.cancel`."""
        return self._runtime.cancel(None, task_id)

    def workers(self, timeout: float = 1.0) -> list[WorkerInfo]:
        """Ask the running workers what they serve; waits `timeout` seconds for their replies.

        Raises `BrokerUnavailable` if the broker cannot be reached.
        """
        return ask_workers(self._runtime.producer, timeout)

    def task_by_name(self, name: str) -> RemoteTask[..., Any]:
        """The remote task for a wire name of the catalog; `UnknownTask` if there is none."""
        found = self.catalog.get(name)
        if found is None:
            raise UnknownTask(f"no contract named {name!r}; known: {', '.join(self.catalog.names())}", contract=name)
        return self.task(found)
