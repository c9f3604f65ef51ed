"""asyncio twins of the client's calls: `await client.aio.add(4, 7)`.

They share everything but waiting with the sync facade: validation, publishing and decoding are
the same code. A waiting call holds no thread: the watcher's thread resolves a
`concurrent.futures.Future`, which `asyncio.wrap_future` hands to the caller's event loop, so many
thousands of calls can be awaited at once from one loop.

Publishing: `await task(...)` calls started in the same loop tick are published together,
pipelined, from the loop's default executor (`_coalesce`): on a 2-core machine the CPU saved by
not publishing one message per round trip goes to the worker (measured with `make bench`). The
price is that a burst of calls waits all at once, which raises peak memory for a large burst.
`submit` publishes at once in the caller's loop and blocks it for one Redis LPUSH (a fraction of a
millisecond), since its caller may never await anything. A whole batch (`map`, `submit_many`) is
published from the executor too, so the loop stays responsive while thousands of messages go out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, cast, overload

from task_contracts import Contract, diagnostics, math, reports
from task_contracts.wire import REVOKED_EXPIRED

from ._batch import ArgSet, Batch, when_all_done
from ._cancel import CancelResult
from ._coalesce import tick_publisher
from ._errors import TaskError
from ._handle import BaseHandle
from ._outcome import decode_outcome
from ._remote import RemoteTask
from ._schedule import Schedule

if TYPE_CHECKING:
    from ._client import TaskClient

P = ParamSpec("P")
R = TypeVar("R")


class AsyncTaskHandle(BaseHandle[R]):
    """A published call, awaited: `await handle` or `await handle.result(timeout=5)`."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, R]:
        return self.result().__await__()

    async def result(self, timeout: float | None = None) -> R:
        """Wait at most `timeout` seconds (default: the contract's bound) for the validated result.

        Raises the same errors as `TaskHandle.result`.
        """
        bound = self._bound(timeout)
        future = self._runtime.watcher.watch(self._id)
        try:
            async with asyncio.timeout(bound):
                expires_in = self._schedule.expires_in() if self._schedule else None
                if expires_in is not None and expires_in < bound:
                    # As the sync wait: at expiry a call not started is revoked as expired.
                    waiting = asyncio.wrap_future(future)
                    done, _ = await asyncio.wait((waiting,), timeout=expires_in)
                    if not done:
                        await asyncio.get_running_loop().run_in_executor(
                            None, self._runtime.cancel, self._contract.name, self._id, REVOKED_EXPIRED, self._schedule
                        )
                    record = await waiting
                else:
                    record = await asyncio.wrap_future(future)
        except TimeoutError:
            raise self._runtime.give_up(self._contract.name, self._id, future, bound) from None
        except asyncio.CancelledError:
            self._runtime.watcher.forget(self._id, future)
            raise
        value: R = decode_outcome(self._contract, self._id, record)
        return value

    async def cancel(self) -> CancelResult:
        """Cancel the call, as `TaskHandle.cancel`; the I/O runs in the loop's executor."""
        return await asyncio.get_running_loop().run_in_executor(None, self._cancel)


class AsyncRemoteTask(Generic[P, R]):
    """A remote task with the contract's typed signature, for asyncio.

    >>> await client.aio.add(4, 7)
    11
    >>> handle = client.aio.add.submit(4, 7)   # published now
    >>> await handle
    11
    """

    __slots__ = ("_sync",)

    def __init__(self, sync: RemoteTask[P, R]) -> None:
        # The sync twin holds the contract, runtime and options; only waiting differs.
        self._sync = sync

    def __repr__(self) -> str:
        return f"<AsyncRemoteTask {self.name}{self.contract.signature_text()}>"

    @property
    def name(self) -> str:
        """The wire name the task is published under."""
        return self._sync.name

    @property
    def contract(self) -> Contract[P, R]:
        return self._sync.contract

    @property
    def timeout(self) -> float:
        """The default bound on waiting for a result, in seconds."""
        return self._sync.timeout

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task and wait for its validated result (at most `timeout` seconds).

        Calls awaited in the same loop tick are published together, pipelined (see `_coalesce`).
        """
        task_id, schedule = await self._publish_in_tick(args, kwargs)
        return await self._handle(task_id, schedule).result()

    async def _publish_in_tick(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Schedule | None]:
        # A coroutine of its own so that the message is freed once published, not kept while waiting.
        runtime = self._sync._runtime
        message = runtime.prepare_call(self.contract, args, kwargs, self._sync._options)
        await tick_publisher(runtime.producer).publish(message)
        return message.task_id, Schedule.of(message)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncTaskHandle[R]:
        """Validate and publish the call now; return an awaitable handle."""
        message = self._sync._runtime.publish_call(self.contract, args, kwargs, self._sync._options)
        return self._handle(message.task_id, Schedule.of(message))

    def handle(self, task_id: str) -> AsyncTaskHandle[R]:
        """An awaitable handle on an earlier call of this task."""
        return self._handle(task_id, None)

    def _handle(self, task_id: str, schedule: Schedule | None) -> AsyncTaskHandle[R]:
        return AsyncTaskHandle(self._sync._runtime, self.contract, task_id, self.timeout, schedule)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        queue: str | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
    ) -> AsyncRemoteTask[P, R]:
        """The same task with other per-call options; the same options as `RemoteTask.with_options`."""
        return AsyncRemoteTask(
            self._sync.with_options(
                timeout=timeout, queue=queue, countdown=countdown, eta=eta, expires=expires, priority=priority
            )
        )

    async def submit_many(self, arg_sets: Iterable[ArgSet]) -> list[AsyncTaskHandle[R]]:
        """Validate every call, publish them all pipelined on one connection; one handle per call."""
        batch: Batch[R] = Batch(self.contract, arg_sets, chunk_size=1)
        runtime, options = self._sync._runtime, self._sync._options
        schedule = await asyncio.get_running_loop().run_in_executor(None, runtime.publish_batch, batch, options)
        return [self._handle(task_id, schedule) for task_id in batch.task_ids]

    @overload
    async def map(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        timeout: float | None = None,
        chunk_size: int | None = None,
        return_exceptions: Literal[False] = False,
    ) -> list[R]: ...
    @overload
    async def map(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        timeout: float | None = None,
        chunk_size: int | None = None,
        return_exceptions: Literal[True],
    ) -> list[R | TaskError]: ...
    async def map(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        timeout: float | None = None,
        chunk_size: int | None = None,
        return_exceptions: bool = False,
    ) -> list[R] | list[R | TaskError]:
        """Run many calls; return their results in input order. Same rules as `RemoteTask.map`."""
        batch: Batch[R] = Batch(self.contract, arg_sets, chunk_size)
        runtime, options = self._sync._runtime, self._sync._options
        loop = asyncio.get_running_loop()
        futures, schedule = await loop.run_in_executor(None, runtime.start_batch, batch, options)
        bound = (self.timeout if timeout is None else timeout) + (schedule.due_in() if schedule else 0.0)
        finished: asyncio.Future[None] = loop.create_future()
        when_all_done(futures, lambda: _resolve_threadsafe(loop, finished))
        try:
            await asyncio.wait((finished,), timeout=bound)
        except asyncio.CancelledError:
            for task_id, future in zip(batch.task_ids, futures, strict=True):
                runtime.watcher.forget(task_id, future)
            raise
        outcomes = batch.outcomes(futures, lambda task_id, future: runtime.give_up(self.name, task_id, future, bound))
        return batch.finish(outcomes, return_exceptions)


def _resolve_threadsafe(loop: asyncio.AbstractEventLoop, finished: asyncio.Future[None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_resolve, finished)


def _resolve(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)


class _AsyncBound(Generic[P, R]):
    """Class attribute that gives each async facade its typed `AsyncRemoteTask`."""

    def __init__(self, contract: Contract[P, R]) -> None:
        self.contract = contract

    @overload
    def __get__(self, client: None, owner: type[Any]) -> _AsyncBound[P, R]: ...
    @overload
    def __get__(self, client: AsyncTaskClient, owner: type[Any]) -> AsyncRemoteTask[P, R]: ...
    def __get__(self, client: AsyncTaskClient | None, owner: type[Any]) -> _AsyncBound[P, R] | AsyncRemoteTask[P, R]:
        if client is None:
            return self
        return client.task(self.contract)


class AsyncTaskClient:
    """The tasks of a `TaskClient` for asyncio; get it as `client.aio`. Closed with its client.

    >>> async with asyncio.TaskGroup() as group:
    ...     calls = [group.create_task(client.aio.add(i, i)) for i in range(1000)]
    """

    add = _AsyncBound(math.add)
    mul = _AsyncBound(math.mul)
    xsum = _AsyncBound(math.xsum)
    div = _AsyncBound(math.div)
    count_to = _AsyncBound(reports.count_to)
    sleep = _AsyncBound(diagnostics.sleep)
    hold = _AsyncBound(diagnostics.hold)
    hold_once = _AsyncBound(diagnostics.hold_once)

    def __init__(self, client: TaskClient) -> None:
        self._client = client
        self._tasks: dict[str, AsyncRemoteTask[..., Any]] = {}

    def __repr__(self) -> str:
        return f"<AsyncTaskClient of {self._client!r}>"

    def task(self, contract: Contract[P, R]) -> AsyncRemoteTask[P, R]:
        """The async remote task for any contract, including ones outside the default catalog."""
        cached = self._tasks.get(contract.name)
        if cached is not None and cached.contract is contract:
            return cast("AsyncRemoteTask[P, R]", cached)
        remote = AsyncRemoteTask(self._client.task(contract))
        self._tasks[contract.name] = remote
        return remote

    def task_by_name(self, name: str) -> AsyncRemoteTask[..., Any]:
        """The async remote task for a wire name of the catalog; `UnknownTask` if there is none."""
        return self.task(self._client.task_by_name(name).contract)
