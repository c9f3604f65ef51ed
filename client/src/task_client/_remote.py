"""A contract bound to a client: call it, submit it, map it, or re-attach to an earlier call.

`BaseRemote` holds every operation once, as steps; `RemoteTask` runs them in the caller's thread
and `AsyncRemoteTask` awaits them, so both faces validate, publish, wait and fail the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Self, TypeVar, overload

from task_contracts import Contract

from ._batch import ArgSet, Batch
from ._errors import TaskError
from ._handle import AsyncTaskHandle, TaskHandle
from ._outcome import decode_outcome
from ._runtime import CallOptions, Runtime
from ._schedule import Schedule, check_schedule
from ._signatures import AsyncPartial, AsyncWorkflow, Partial, Workflow
from ._steps import Steps, run_async, run_sync
from ._stream import Stream, iterate_async, iterate_sync
from ._workflow import Call, make_call

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
A = TypeVar("A")

_DEFAULT_OPTIONS = CallOptions()


class BaseRemote(Generic[P, R]):
    """What both faces of a remote task share: the contract, the options and every operation."""

    __slots__ = ("_contract", "_options", "_runtime")

    def __init__(self, runtime: Runtime, contract: Contract[P, R], options: CallOptions = _DEFAULT_OPTIONS) -> None:
        self._runtime = runtime
        self._contract = contract
        self._options = options

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._contract.name}{self._contract.signature_text()}>"

    @property
    def name(self) -> str:
        """The wire name the task is published under."""
        return self._contract.name

    @property
    def contract(self) -> Contract[P, R]:
        return self._contract

    @property
    def timeout(self) -> float:
        """The default bound on waiting for a result, in seconds."""
        return self._options.timeout if self._options.timeout is not None else self._contract.timeout

    def with_options(
        self,
        *,
        timeout: float | None = None,
        queue: str | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
    ) -> Self:
        """The same task with other per-call options; each applies to every call made through it.

        `timeout`: the wait bound (from when the call is due); `queue`; `countdown` (seconds) or
        `eta` (an aware datetime): not run before then; `expires` (seconds from now or an aware
        datetime): never run if not started by then (`TaskExpired`); `priority`: 0 to 9, on Redis
        0 is served first. Wrong values raise `InvalidOptions` here.

        >>> client.add.with_options(timeout=2)(4, 7)
        >>> client.add.with_options(countdown=5, expires=60).submit(4, 7)
        """
        check_schedule(countdown=countdown, eta=eta, expires=expires, priority=priority)
        current = self._options
        if countdown is not None or eta is not None:  # a new due time replaces the old one
            current = replace(current, countdown=countdown, eta=eta)
        options = replace(
            current,
            timeout=current.timeout if timeout is None else timeout,
            queue=current.queue if queue is None else queue,
            expires=current.expires if expires is None else expires,
            priority=current.priority if priority is None else priority,
        )
        return type(self)(self._runtime, self._contract, options)

    def _signature(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Call:
        """A workflow link: complete with every parameter, partial without the first (`InvalidArguments` if neither)."""
        return make_call(self._contract, args, kwargs, self._options.queue or self._contract.queue, self.timeout)

    # -- the operations, once ------------------------------------------------------
    def _call_steps(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Steps[R]:
        task_id, record = yield from self._runtime.call(self._contract, args, kwargs, self._options, self.timeout)
        value: R = decode_outcome(self._contract, task_id, record)
        return value

    def _submit_steps(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Steps[tuple[str, Schedule | None]]:
        return (yield from self._runtime.publish(self._contract, args, kwargs, self._options))

    def _map_steps(
        self, arg_sets: Iterable[ArgSet], timeout: float | None, chunk_size: int | None, return_exceptions: bool
    ) -> Steps[list[Any]]:
        batch: Batch[R] = Batch(self._contract, arg_sets, chunk_size)
        bound = self.timeout if timeout is None else timeout
        outcomes = yield from self._runtime.run_batch(batch, self._options, bound)
        return batch.finish(outcomes, return_exceptions)

    def _stream(
        self,
        arg_sets: Iterable[ArgSet],
        chunk_size: int | None,
        max_in_flight: int | None,
        timeout: float | None,
        in_order: bool,
    ) -> Stream[R]:
        return Stream(
            self._runtime,
            self._contract,
            self._options,
            arg_sets,
            chunk_size=chunk_size,
            max_in_flight=max_in_flight,
            bound=self.timeout if timeout is None else timeout,
            in_order=in_order,
        )

    def _submit_many_steps(self, arg_sets: Iterable[ArgSet]) -> Steps[tuple[list[str], Schedule | None]]:
        batch: Batch[R] = Batch(self._contract, arg_sets, chunk_size=1)
        schedule = yield from self._runtime.publish_batch(batch, self._options)
        return batch.task_ids, schedule


class RemoteTask(BaseRemote[P, R]):
    """A remote task with the contract's typed signature.

    >>> client.add(4, 7)               # blocking, bounded by the contract's timeout
    11
    >>> client.add.submit(4, 7).id     # publish now, wait later
    '...'
    """

    __slots__ = ()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task and wait for its validated result (at most `timeout` seconds)."""
        return run_sync(self._runtime.producer, self._call_steps(args, kwargs))

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Validate and publish the call; return its handle without waiting."""
        task_id, schedule = run_sync(self._runtime.producer, self._submit_steps(args, kwargs))
        return TaskHandle(self._runtime, self._contract, task_id, self.timeout, schedule)

    def handle(self, task_id: str) -> TaskHandle[R]:
        """A handle on an earlier call of this task, e.g. after a `TaskTimeout`."""
        return TaskHandle(self._runtime, self._contract, task_id, self.timeout)

    # The first overload is a complete call; the second leaves out the first parameter, which the
    # previous link's result fills. Typed through `__call__`, so that mypy infers that parameter too.
    @overload
    def s(self, *args: P.args, **kwargs: P.kwargs) -> Workflow[R]: ...  # type: ignore[overload-overlap]
    @overload
    def s(self: Callable[Concatenate[A, Q], R], *args: Q.args, **kwargs: Q.kwargs) -> Partial[A, R]: ...
    def s(self, *args: Any, **kwargs: Any) -> Workflow[R] | Partial[Any, R]:
        """A signature for workflows (Celery's `.s()`): complete with every parameter, or partial
        without the first, which the previous result fills. Validated now; nothing is published.

        >>> (client.add.s(4, 7) | client.mul.s(10))()   # mul(add(4, 7), 10)
        110
        """
        call = self._signature(args, kwargs)
        return Partial(self._runtime, call) if call.partial else Workflow(self._runtime, call)

    @overload
    def map(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        timeout: float | None = None,
        chunk_size: int | None = None,
        return_exceptions: Literal[False] = False,
    ) -> list[R]: ...
    @overload
    def map(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        timeout: float | None = None,
        chunk_size: int | None = None,
        return_exceptions: Literal[True],
    ) -> list[R | TaskError]: ...
    def map(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        timeout: float | None = None,
        chunk_size: int | None = None,
        return_exceptions: bool = False,
    ) -> list[R] | list[R | TaskError]:
        """Run many calls; return their results in input order.

        Each item is a tuple/list of positional arguments or a mapping of named ones. Every item
        is validated before anything is published (`InvalidArguments` names the item). Calls
        travel in chunks of `chunk_size` (default 250) per message; `chunk_size=1` sends one
        message per call. `timeout` (default: this task's timeout) bounds the whole batch. A
        failing call fails alone: `BatchFailed` is raised once all calls have finished, carrying
        every outcome; with `return_exceptions=True` the list holds each failed call's error instead.

        >>> client.add.map([(1, 2), (3, 4), {"x": 5, "y": 6}])
        [3, 7, 11]
        """
        return run_sync(self._runtime.producer, self._map_steps(arg_sets, timeout, chunk_size, return_exceptions))

    @overload
    def imap(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[False] = False,
    ) -> Iterator[R]: ...
    @overload
    def imap(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[True],
    ) -> Iterator[R | TaskError]: ...
    def imap(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> Iterator[R] | Iterator[R | TaskError]:
        """Run many calls, streamed: yield their results in input order as they arrive.

        `arg_sets` is read lazily (items as in `map`) and at most `max_in_flight` calls (default
        10,000) are published and unanswered at any time, so any number of calls runs in bounded
        memory. Calls travel in chunks of `chunk_size` (default 250). `timeout` (default: this
        task's timeout) bounds each wait for the next message's results. A failed call raises its
        `TaskError` where it stands (with `return_exceptions=True` the error is yielded instead);
        an invalid call raises `InvalidArguments` after the calls before it. Closing the iterator
        early (break and close, an exception, Ctrl-C) revokes the calls still queued.

        >>> for total in client.add.imap((i, i) for i in range(1_000_000)):
        ...     ...
        """
        stream = self._stream(arg_sets, chunk_size, max_in_flight, timeout, in_order=True)
        return iterate_sync(stream, return_exceptions, indexed=False)

    @overload
    def as_completed(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[False] = False,
    ) -> Iterator[tuple[int, R]]: ...
    @overload
    def as_completed(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[True],
    ) -> Iterator[tuple[int, R | TaskError]]: ...
    def as_completed(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> Iterator[tuple[int, R]] | Iterator[tuple[int, R | TaskError]]:
        """As `imap`, but yield `(index, result)` pairs in the order the calls finish.

        `timeout` bounds each wait for any next result; when it runs out, every call still
        unanswered gets its `TaskTimeout`. The calls of one chunk finish together.

        >>> for index, total in client.add.as_completed(pairs, chunk_size=1):
        ...     ...
        """
        stream = self._stream(arg_sets, chunk_size, max_in_flight, timeout, in_order=False)
        return iterate_sync(stream, return_exceptions, indexed=True)

    def submit_many(self, arg_sets: Iterable[ArgSet]) -> list[TaskHandle[R]]:
        """Validate every call, publish them all pipelined on one connection, return one handle per call.

        Each call travels as its own message, so each has its own task id and handle.
        """
        task_ids, schedule = run_sync(self._runtime.producer, self._submit_many_steps(arg_sets))
        return [TaskHandle(self._runtime, self._contract, task_id, self.timeout, schedule) for task_id in task_ids]


class AsyncRemoteTask(BaseRemote[P, R]):
    """A remote task with the contract's typed signature, for asyncio. Never blocks the loop on I/O.

    >>> await aclient.add(4, 7)
    11
    >>> handle = await aclient.add.submit(4, 7)   # published once awaited
    >>> await handle
    11

    Calls awaited in the same loop tick are published together, pipelined, from the loop's
    default executor (see `_coalesce`).
    """

    __slots__ = ()

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task and wait for its validated result (at most `timeout` seconds)."""
        return await run_async(self._runtime.producer, self._call_steps(args, kwargs))

    async def submit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncTaskHandle[R]:
        """Validate and publish the call; return its handle once the broker has it."""
        task_id, schedule = await run_async(self._runtime.producer, self._submit_steps(args, kwargs))
        return AsyncTaskHandle(self._runtime, self._contract, task_id, self.timeout, schedule)

    def handle(self, task_id: str) -> AsyncTaskHandle[R]:
        """An awaitable handle on an earlier call of this task."""
        return AsyncTaskHandle(self._runtime, self._contract, task_id, self.timeout)

    @overload
    def s(self, *args: P.args, **kwargs: P.kwargs) -> AsyncWorkflow[R]: ...  # type: ignore[overload-overlap]
    @overload
    def s(
        self: Callable[Concatenate[A, Q], Coroutine[Any, Any, R]], *args: Q.args, **kwargs: Q.kwargs
    ) -> AsyncPartial[A, R]: ...
    def s(self, *args: Any, **kwargs: Any) -> AsyncWorkflow[R] | AsyncPartial[Any, R]:
        """A signature for asyncio workflows, as `RemoteTask.s`.

        >>> await (client.add.s(4, 7) | client.mul.s(10))()
        110
        """
        call = self._signature(args, kwargs)
        return AsyncPartial(self._runtime, call) if call.partial else AsyncWorkflow(self._runtime, call)

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
        return await run_async(
            self._runtime.producer, self._map_steps(arg_sets, timeout, chunk_size, return_exceptions)
        )

    @overload
    def imap(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[False] = False,
    ) -> AsyncIterator[R]: ...
    @overload
    def imap(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[True],
    ) -> AsyncIterator[R | TaskError]: ...
    def imap(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> AsyncIterator[R] | AsyncIterator[R | TaskError]:
        """Run many calls, streamed: `async for` yields results in input order. Same rules as `RemoteTask.imap`.

        Cancelling the consuming task (or `aclose()`) revokes the calls still queued.

        >>> async for total in aclient.add.imap((i, i) for i in range(1_000_000)):
        ...     ...
        """
        stream = self._stream(arg_sets, chunk_size, max_in_flight, timeout, in_order=True)
        return iterate_async(stream, return_exceptions, indexed=False)

    @overload
    def as_completed(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[False] = False,
    ) -> AsyncIterator[tuple[int, R]]: ...
    @overload
    def as_completed(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: Literal[True],
    ) -> AsyncIterator[tuple[int, R | TaskError]]: ...
    def as_completed(
        self,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> AsyncIterator[tuple[int, R]] | AsyncIterator[tuple[int, R | TaskError]]:
        """`(index, result)` pairs in the order the calls finish. Same rules as `RemoteTask.as_completed`."""
        stream = self._stream(arg_sets, chunk_size, max_in_flight, timeout, in_order=False)
        return iterate_async(stream, return_exceptions, indexed=True)

    async def submit_many(self, arg_sets: Iterable[ArgSet]) -> list[AsyncTaskHandle[R]]:
        """Validate every call, publish them all pipelined on one connection; one handle per call."""
        task_ids, schedule = await run_async(self._runtime.producer, self._submit_many_steps(arg_sets))
        return [AsyncTaskHandle(self._runtime, self._contract, task_id, self.timeout, schedule) for task_id in task_ids]
