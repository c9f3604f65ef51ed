"""A contract bound to a client: call it, submit it, or re-attach to an earlier call."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Generic, Literal, ParamSpec, TypeVar, overload

from task_contracts import Contract

from ._batch import ArgSet, Batch, when_all_done
from ._errors import TaskError
from ._handle import TaskHandle
from ._runtime import CallOptions, Runtime
from ._schedule import Schedule, check_schedule

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
        return self.submit(*args, **kwargs).result()

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Validate and publish the call; return its handle without waiting."""
        message = self._runtime.publish_call(self._contract, args, kwargs, self._options)
        return TaskHandle(self._runtime, self._contract, message.task_id, self.timeout, Schedule.of(message))

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
        futures, schedule = self._runtime.start_batch(batch, self._options)
        bound = (self.timeout if timeout is None else timeout) + (schedule.due_in() if schedule else 0.0)
        finished = threading.Event()
        when_all_done(futures, finished.set)
        finished.wait(bound)
        outcomes = batch.outcomes(
            futures, lambda task_id, future: self._runtime.give_up(self.name, task_id, future, bound)
        )
        return batch.finish(outcomes, return_exceptions)

    def submit_many(self, arg_sets: Iterable[ArgSet]) -> list[TaskHandle[R]]:
        """Validate every call, publish them all pipelined on one connection, return one handle per call.

        Each call travels as its own message, so each has its own task id and handle.
        """
        batch: Batch[R] = Batch(self._contract, arg_sets, chunk_size=1)
        schedule = self._runtime.publish_batch(batch, self._options)
        return [
            TaskHandle(self._runtime, self._contract, task_id, self.timeout, schedule) for task_id in batch.task_ids
        ]

    def handle(self, task_id: str) -> TaskHandle[R]:
        """A handle on an earlier call of this task, e.g. after a `TaskTimeout`."""
        return TaskHandle(self._runtime, self._contract, task_id, self.timeout)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        queue: str | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
    ) -> RemoteTask[P, R]:
        """The same task with other per-call options; each applies to every call made through it.

        `timeout`: the wait bound (from when the call is due); `queue`; `countdown` (seconds) or
        `eta` (an aware datetime): not run before then; `expires` (seconds from now or an aware
        datetime): never run if not started by then (`TaskExpired`); `priority`: 0 to 9, on Redis
        0 is served first. Wrong values raise `TypeError` or `ValueError` here.

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
        return RemoteTask(self._runtime, self._contract, options)
