"""A contract bound to a client: call it, submit it, or re-attach to an earlier call."""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

from task_contracts import Contract

from ._batch import ArgSet, Batch, when_all_done
from ._errors import TaskError
from ._handle import TaskHandle
from ._outcome import decode_outcome
from ._runtime import CallOptions, Runtime
from ._stream import Pending, Stream, raise_or_keep

P = ParamSpec("P")
R = TypeVar("R")


class RemoteTask(Generic[P, R]):
    """A remote task with the contract's typed signature.

    >>> client.add(4, 7)               # blocking, bounded by the contract's timeout
    11
    >>> client.add.submit(4, 7).id     # publish now, wait later
    '...'
    """

    __slots__ = ("_contract", "_options", "_runtime")

    def __init__(self, runtime: Runtime, contract: Contract[P, R], options: CallOptions | None = None) -> None:
        self._runtime = runtime
        self._contract = contract
        self._options = options or CallOptions()

    def __repr__(self) -> str:
        return f"<RemoteTask {self._contract.name}{self._contract.signature_text()}>"

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

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task and wait for its validated result (at most `timeout` seconds)."""
        task_id, record = self._runtime.call(self._contract, args, kwargs, self._options, self.timeout)
        value: R = decode_outcome(self._contract, task_id, record)
        return value

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Validate and publish the call; return its handle without waiting."""
        task_id = self._runtime.publish_call(self._contract, args, kwargs, self._options)
        return TaskHandle(self._runtime, self._contract, task_id, self.timeout)

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
        batch: Batch[R] = Batch(self._contract, arg_sets, chunk_size)
        bound = self.timeout if timeout is None else timeout
        futures = self._runtime.start_batch(batch, self._options)
        finished = threading.Event()
        when_all_done(futures, finished.set)
        finished.wait(bound)
        outcomes = batch.outcomes(
            futures, lambda task_id, future: self._runtime.give_up(self.name, task_id, future, bound)
        )
        return batch.finish(outcomes, return_exceptions)

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
        `TaskError` where it stands (with `return_exceptions=True` the error is yielded instead).
        Closing the iterator early (break, an exception, Ctrl-C) revokes the calls still queued.

        >>> for total in client.add.imap((i, i) for i in range(1_000_000)):
        ...     ...
        """
        bound = self.timeout if timeout is None else timeout
        stream: Stream[R] = Stream(
            self._runtime,
            self._contract,
            self._options,
            arg_sets,
            chunk_size=chunk_size,
            max_in_flight=max_in_flight,
            on_done=_ignore,
        )
        return _in_order(stream, bound, return_exceptions)

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
        unanswered gets its `TaskTimeout`. Calls of one chunk finish together.

        >>> for index, total in client.add.as_completed(pairs, chunk_size=1):
        ...     ...
        """
        bound = self.timeout if timeout is None else timeout
        finished: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        stream: Stream[R] = Stream(
            self._runtime,
            self._contract,
            self._options,
            arg_sets,
            chunk_size=chunk_size,
            max_in_flight=max_in_flight,
            on_done=finished.put,
        )
        return _in_finishing_order(stream, finished, bound, return_exceptions)

    def submit_many(self, arg_sets: Iterable[ArgSet]) -> list[TaskHandle[R]]:
        """Validate every call, publish them all pipelined on one connection, return one handle per call.

        Each call travels as its own message, so each has its own task id and handle.
        """
        batch: Batch[R] = Batch(self._contract, arg_sets, chunk_size=1)
        self._runtime.publish_batch(batch, self._options)
        return [TaskHandle(self._runtime, self._contract, task_id, self.timeout) for task_id in batch.task_ids]

    def handle(self, task_id: str) -> TaskHandle[R]:
        """A handle on an earlier call of this task, e.g. after a `TaskTimeout`."""
        return TaskHandle(self._runtime, self._contract, task_id, self.timeout)

    def with_options(self, *, timeout: float | None = None, queue: str | None = None) -> RemoteTask[P, R]:
        """The same task with another wait bound or queue.

        >>> client.add.with_options(timeout=2)(4, 7)
        """
        options = replace(
            self._options,
            timeout=self._options.timeout if timeout is None else timeout,
            queue=self._options.queue if queue is None else queue,
        )
        return RemoteTask(self._runtime, self._contract, options)


def _ignore(_pending: Pending) -> None:
    pass


def _refill(stream: Stream[Any]) -> None:
    batch = stream.plan()
    if batch is not None:
        stream.publish(batch)


def _in_order(stream: Stream[Any], bound: float, return_exceptions: bool) -> Iterator[Any]:
    try:
        _refill(stream)
        while stream.pending:
            head = stream.head()
            concurrent.futures.wait((head.future,), timeout=bound)
            outcomes = stream.outcomes(head, bound)
            _refill(stream)  # before yielding: the workers stay busy while the caller works
            for outcome in outcomes:
                yield raise_or_keep(outcome, return_exceptions)
        stream.finish()
    finally:
        stream.cancel()  # closed early, Ctrl-C or an error: revoke what is still queued


def _in_finishing_order(
    stream: Stream[Any], finished: queue.SimpleQueue[Pending], bound: float, return_exceptions: bool
) -> Iterator[tuple[int, Any]]:
    try:
        _refill(stream)
        while stream.pending:
            try:
                done = [finished.get(timeout=bound)]
            except queue.Empty:
                done = list(stream.pending)  # nothing finished within the bound: all time out
            for pending in done:
                if pending not in stream.pending:
                    continue  # already handed out (its notice came after a timeout)
                outcomes = stream.outcomes(pending, bound)
                _refill(stream)
                for offset, outcome in enumerate(outcomes):
                    yield pending.first + offset, raise_or_keep(outcome, return_exceptions)
        stream.finish()
    finally:
        stream.cancel()
