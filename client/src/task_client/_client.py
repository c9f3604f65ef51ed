"""The client faces: `CatalogClient` and `AsyncCatalogClient` for a team's own catalog, and
`TaskClient` / `AsyncTaskClient`, the clients of the demo catalog (`math`, `reports`).

Both faces share `BaseClient` (settings, connections, catalog lookups); they differ only in the
remote tasks they hand out and in how they close. A client's typed attributes are its `remote(...)`
declarations and nothing else; `CatalogClient[AsyncX]` names the class `client.aio` returns.
"""

from __future__ import annotations

import asyncio
import os
from functools import cached_property, partial
from typing import Any, ClassVar, Generic, ParamSpec, Self, cast, get_args, get_origin

from typing_extensions import TypeVar

from task_contracts import CATALOG, Contract, ContractCatalog, redact_url, resolve_urls

from ._cancel import CancelResult
from ._errors import UnknownTask
from ._inspect import WorkerInfo, ask_workers
from ._remote import AsyncRemoteTask, BaseRemote, RemoteTask
from ._runtime import Runtime
from ._settings import ClientSettings
from ._steps import Blocking, Steps, run_async, run_sync
from ._tasks import DemoTasks, remote
from ._tracing import tracing_wanted

#: Where calls from producers with Celery's defaults wait (workers consume it unless told not to).
CELERY_DEFAULT_QUEUE = "celery"

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A", bound="AsyncCatalogClient", default="AsyncCatalogClient")


def _declared_remotes(cls: type[Any]) -> dict[str, Contract[..., Any]]:
    """The `remote(...)` attributes of a client class and its bases, by attribute name."""
    found: dict[str, Contract[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, remote):
                found[name] = value.contract
            else:
                found.pop(name, None)  # a later plain attribute hides an inherited remote
    return found


class BaseClient:
    """What both client faces share: settings, connections, and the catalog."""

    #: The catalog a client uses when given none: the contracts of its `remote(...)` attributes.
    declared_catalog: ClassVar[ContractCatalog] = ContractCatalog()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "declared_catalog" not in vars(cls):
            cls.declared_catalog = ContractCatalog(*dict.fromkeys(_declared_remotes(cls).values()))

    def __init__(
        self,
        broker_url: str | None = None,
        result_backend: str | None = None,
        *,
        connect_timeout: float = 1.0,
        socket_timeout: float = 2.0,
        publish_retries: int = 1,
        max_connections: int = 100,
        tracing: bool | None = None,
        cancel_secret: str | bytes | None = None,
        verify_key_file: str | None = None,
        catalog: ContractCatalog | None = None,
    ) -> None:
        secret = cancel_secret if cancel_secret is not None else os.environ.get("TASK_CANCEL_SECRET")
        settings = ClientSettings(
            urls=resolve_urls(broker_url, result_backend),
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            publish_retries=publish_retries,
            max_connections=max_connections,
            tracing=tracing_wanted(tracing),
            **({"cancel_secret": secret.encode() if isinstance(secret, str) else secret} if secret else {}),
            verify_key_file=verify_key_file or os.environ.get("TASK_VERIFY_KEY_FILE") or None,
        )
        self._setup(Runtime(settings), self.declared_catalog if catalog is None else catalog, owns_runtime=True)

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

    def _searched_queues(self) -> list[str]:
        """Where a call known only by its id may wait: this catalog's queues and Celery's default one."""
        return list(dict.fromkeys([*self.catalog.queues(), CELERY_DEFAULT_QUEUE]))

    def _cancel_steps(self, task_id: str) -> Steps[CancelResult]:
        # By id: the call may never have been published (a typo); its message is looked for first.
        return (yield from self._runtime.cancel(None, task_id, queues=self._searched_queues()))

    def _workers_steps(self, timeout: float) -> Steps[list[WorkerInfo]]:
        workers: list[WorkerInfo] = yield Blocking(partial(ask_workers, self._runtime.producer, timeout))
        return workers


class AsyncCatalogClient(BaseClient):
    """The asyncio twin of `CatalogClient`: the same arguments, tasks, bounds and errors; every call awaited.

    Nothing it does blocks the event loop on I/O: publishing, waiting and closing run on the
    client's result thread or the loop's default executor.

    >>> class AsyncBillingClient(Billing, AsyncCatalogClient): ...
    >>> async with AsyncBillingClient() as client:
    ...     await client.charge("cust-1", 500)
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
        """The async remote task for any contract, including ones outside this client's catalog."""
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


class CatalogClient(BaseClient, Generic[A]):
    """A client for a team's own catalog: subclass it with one `remote(contract)` attribute per contract.

    Calls go by wire name through Celery's `send_task`; it never imports server code. URLs resolve
    as: argument, then `TASK_BROKER_URL` / `TASK_RESULT_BACKEND`, then `redis://127.0.0.1:6379/0`
    (the backend defaults to the broker URL). `catalog` (by-name lookups, `task_by_name`) defaults
    to the contracts of the class's attributes. `tracing` (argument, then `TASK_TRACING`, default
    off) puts the caller's OpenTelemetry trace context on every message; it needs
    `task-client[otel]`. `cancel_secret` (argument, then `TASK_CANCEL_SECRET`, default a random one
    per client) makes the cancel tokens: only a client holding the secret of the client that made a
    call can cancel it. `verify_key_file` (argument, then `TASK_VERIFY_KEY_FILE`) names the workers'
    public key: records not signed by a worker are then refused (needs `task-client[signing]`; see
    docs/security.md). Bad settings raise `ValueError` (`task_contracts.ConnectionConfigError`
    for a URL). The type argument names the class of `client.aio` (for type checkers; at run time
    it is derived from the attributes when not given):

    >>> class Billing:
    ...     charge = remote(billing.charge)
    >>> class AsyncBillingClient(Billing, AsyncCatalogClient): ...
    >>> class BillingClient(Billing, CatalogClient[AsyncBillingClient]): ...
    >>> with BillingClient() as client:
    ...     client.charge("cust-1", 500)
    """

    #: The class of `client.aio`: given as the type argument, or derived from the attributes.
    async_face: ClassVar[type[AsyncCatalogClient]] = AsyncCatalogClient

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        named = [
            arg
            for base in vars(cls).get("__orig_bases__", ())
            if get_origin(base) is CatalogClient
            for arg in get_args(base)
            if isinstance(arg, type)
        ]
        if named:
            if not issubclass(named[0], AsyncCatalogClient):
                raise TypeError(f"CatalogClient[{named[0].__name__}]: expected an AsyncCatalogClient subclass")
            cls.async_face = named[0]
            return
        inherited = cls.async_face
        known = _declared_remotes(inherited)
        missing = {name: remote(c) for name, c in _declared_remotes(cls).items() if known.get(name) is not c}
        if missing:  # the same attributes for asyncio, so that `client.aio.<task>` finds each of them
            cls.async_face = type(f"Async{cls.__name__}", (inherited,), {"__module__": cls.__module__, **missing})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @cached_property
    def aio(self) -> A:
        """The same tasks for asyncio, on this client's connections: `await client.aio.charge(...)`.

        Closed with this client.
        """
        return cast("A", self.async_face._sharing(self._runtime, self.catalog))

    def close(self) -> None:
        """Close connections and stop the result thread; waiting calls fail with `ClientClosed`."""
        if self._owns_runtime:
            self._runtime.close()

    def task(self, contract: Contract[P, R]) -> RemoteTask[P, R]:
        """The remote task for any contract, including ones outside this client's catalog."""
        return cast("RemoteTask[P, R]", self._cached(contract, RemoteTask))

    def task_by_name(self, name: str) -> RemoteTask[..., Any]:
        """The remote task for a wire name of the catalog; `UnknownTask` if there is none."""
        return self.task(self._contract_named(name))

    def cancel(self, task_id: str) -> CancelResult:
        """Cancel a call by id, of any contract; see `TaskHandle.cancel`. `UNKNOWN` when no call
        with this id is queued (on this client's queues), running or finished: nothing is stored
        but a cancel mark, so that such a message, if one turns up, never runs."""
        return run_sync(self._runtime.producer, self._cancel_steps(task_id))

    def workers(self, timeout: float = 1.0) -> list[WorkerInfo]:
        """Ask the running workers what they serve; waits `timeout` seconds for their replies.

        Raises `BrokerUnavailable` if the broker cannot be reached.
        """
        return run_sync(self._runtime.producer, self._workers_steps(timeout))


class AsyncTaskClient(DemoTasks, AsyncCatalogClient):
    """The asyncio client of the demo catalog (`math`, `reports`): `await client.add(4, 7)`.

    >>> async with AsyncTaskClient() as client:
    ...     await client.add(4, 7)
    11
    """

    declared_catalog = CATALOG


class TaskClient(DemoTasks, CatalogClient[AsyncTaskClient]):
    """The client of the demo catalog (`math`, `reports`); a team's client subclasses `CatalogClient`.

    >>> with TaskClient() as client:
    ...     client.add(4, 7)
    11
    """

    declared_catalog = CATALOG
