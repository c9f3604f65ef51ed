"""`TaskClient` and `AsyncTaskClient`: the contracts of a catalog as typed methods, called by wire name.

Both faces share `BaseClient` (settings, connections, catalog lookups) and the typed attributes of
`DefaultTasks`; they differ only in the remote tasks they hand out and in how they close.
"""

from __future__ import annotations

import asyncio
import os
from functools import cached_property, partial
from typing import Any, ParamSpec, Self, TypeVar, cast

from task_contracts import CATALOG, Contract, ContractCatalog, redact_url, resolve_urls

from ._cancel import CancelResult
from ._errors import UnknownTask
from ._inspect import WorkerInfo, ask_workers
from ._remote import AsyncRemoteTask, BaseRemote, RemoteTask
from ._runtime import Runtime
from ._settings import ClientSettings
from ._steps import Blocking, Steps, run_async, run_sync
from ._tasks import DefaultTasks
from ._tracing import tracing_wanted

P = ParamSpec("P")
R = TypeVar("R")


class BaseClient:
    """What both client faces share: settings, connections, and the catalog."""

    def __init__(
        self,
        broker_url: str | None = None,
        result_backend: str | None = None,
        *,
        connect_timeout: float = 1.0,
        socket_timeout: float = 2.0,
        publish_retries: int = 1,
        tracing: bool | None = None,
        cancel_secret: str | bytes | None = None,
        verify_key_file: str | None = None,
        catalog: ContractCatalog = CATALOG,
    ) -> None:
        secret = cancel_secret if cancel_secret is not None else os.environ.get("TASK_CANCEL_SECRET")
        settings = ClientSettings(
            urls=resolve_urls(broker_url, result_backend),
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            publish_retries=publish_retries,
            tracing=tracing_wanted(tracing),
            **({"cancel_secret": secret.encode() if isinstance(secret, str) else secret} if secret else {}),
            verify_key_file=verify_key_file or os.environ.get("TASK_VERIFY_KEY_FILE") or None,
        )
        self._setup(Runtime(settings), catalog, owns_runtime=True)

    def _setup(self, runtime: Runtime, catalog: ContractCatalog, *, owns_runtime: bool) -> None:
        self._runtime = runtime
        self._owns_runtime = owns_runtime
        self.catalog = catalog
        self._tasks: dict[str, BaseRemote[..., Any]] = {}

    @classmethod
    def _sharing(cls, runtime: Runtime, catalog: ContractCatalog) -> Self:
        """A client on another client's connections (which that one closes)."""
        client = cls.__new__(cls)
        client._setup(runtime, catalog, owns_runtime=False)
        return client

    @property
    def settings(self) -> ClientSettings:
        return self._runtime.settings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} broker={redact_url(self.settings.urls.broker_url)!r}>"

    def _contract_named(self, name: str) -> Contract[..., Any]:
        found = self.catalog.get(name)
        if found is None:
            raise UnknownTask(f"no contract named {name!r}; known: {', '.join(self.catalog.names())}", contract=name)
        return found

    def _cached(self, contract: Contract[..., Any], face: type[BaseRemote[..., Any]]) -> Any:
        cached = self._tasks.get(contract.name)
        if cached is None or cached.contract is not contract:
            cached = self._tasks[contract.name] = face(self._runtime, contract)
        return cached

    def _cancel_steps(self, task_id: str) -> Steps[CancelResult]:
        return (yield from self._runtime.cancel(None, task_id))

    def _workers_steps(self, timeout: float) -> Steps[list[WorkerInfo]]:
        workers: list[WorkerInfo] = yield Blocking(partial(ask_workers, self._runtime.producer, timeout))
        return workers


class TaskClient(DefaultTasks, BaseClient):
    """Calls tasks by wire name through Celery's `send_task`; never imports server code.

    URLs resolve as: argument, then `TASK_BROKER_URL` / `TASK_RESULT_BACKEND`, then
    `redis://127.0.0.1:6379/0` (the backend defaults to the broker URL). `tracing` (argument,
    then `TASK_TRACING`, default off) puts the caller's OpenTelemetry trace context on every
    message; it needs `task-client[otel]`. `cancel_secret` (argument, then `TASK_CANCEL_SECRET`,
    default a random one per client) makes the cancel tokens: a call can be cancelled only by a
    client holding the secret of the client that made it. `verify_key_file` (argument, then
    `TASK_VERIFY_KEY_FILE`) names the workers' public key: records not signed by a worker are then
    refused (needs `task-client[signing]`; see docs/security.md). Bad settings raise `ValueError`
    (`task_contracts.ConnectionConfigError` for a URL).

    >>> with TaskClient() as client:
    ...     client.add(4, 7)
    11
    """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @cached_property
    def aio(self) -> AsyncTaskClient:
        """The same tasks for asyncio, on this client's connections: `await client.aio.add(4, 7)`.

        Closed with this client.
        """
        return AsyncTaskClient._sharing(self._runtime, self.catalog)

    def close(self) -> None:
        """Close connections and stop the result thread; waiting calls fail with `ClientClosed`."""
        if self._owns_runtime:
            self._runtime.close()

    def task(self, contract: Contract[P, R]) -> RemoteTask[P, R]:
        """The remote task for any contract, including ones outside the default catalog."""
        return cast("RemoteTask[P, R]", self._cached(contract, RemoteTask))

    def task_by_name(self, name: str) -> RemoteTask[..., Any]:
        """The remote task for a wire name of the catalog; `UnknownTask` if there is none."""
        return self.task(self._contract_named(name))

    def cancel(self, task_id: str) -> CancelResult:
        """Cancel a call by id, of any contract; see `TaskHandle.cancel`."""
        return run_sync(self._runtime.producer, self._cancel_steps(task_id))

    def workers(self, timeout: float = 1.0) -> list[WorkerInfo]:
        """Ask the running workers what they serve; waits `timeout` seconds for their replies.

        Raises `BrokerUnavailable` if the broker cannot be reached.
        """
        return run_sync(self._runtime.producer, self._workers_steps(timeout))


class AsyncTaskClient(DefaultTasks, BaseClient):
    """The asyncio twin of `TaskClient`: the same arguments, tasks, bounds and errors; every call awaited.

    Nothing it does blocks the event loop on I/O: publishing, waiting and closing run on the
    client's result thread or the loop's default executor.

    >>> async with AsyncTaskClient() as client:
    ...     await client.add(4, 7)
    11
    """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close connections and stop the result thread, off the loop; waiting calls fail with `ClientClosed`.

        A `client.aio` facade is closed with its sync client instead; this does nothing for it.
        """
        if self._owns_runtime:
            await asyncio.get_running_loop().run_in_executor(None, self._runtime.close)

    def task(self, contract: Contract[P, R]) -> AsyncRemoteTask[P, R]:
        """The async remote task for any contract, including ones outside the default catalog."""
        return cast("AsyncRemoteTask[P, R]", self._cached(contract, AsyncRemoteTask))

    def task_by_name(self, name: str) -> AsyncRemoteTask[..., Any]:
        """The async remote task for a wire name of the catalog; `UnknownTask` if there is none."""
        return self.task(self._contract_named(name))

    async def cancel(self, task_id: str) -> CancelResult:
        """Cancel a call by id, of any contract; see `TaskHandle.cancel`."""
        return await run_async(self._runtime.producer, self._cancel_steps(task_id))

    async def workers(self, timeout: float = 1.0) -> list[WorkerInfo]:
        """Ask the running workers what they serve; waits `timeout` seconds for their replies."""
        return await run_async(self._runtime.producer, self._workers_steps(timeout))
