"""Every operation that does I/O is written once, as steps; the two faces only run the steps.

An operation (publish a call, wait for its record, read its status, run a batch) is a generator
that yields the I/O it needs and receives the outcome. `run_sync` performs each step in the
calling thread; `run_async` performs the same step without blocking the event loop. So sync and
async share one policy, one set of bounds and one set of errors by construction.

    task = RemoteTask / AsyncRemoteTask -> steps (Runtime, handles) -> run_sync / run_async -> Producer, ResultWatcher
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, NamedTuple, TypeAlias, TypeVar

from ._coalesce import tick_publisher
from ._producer import Outgoing, Producer
from ._replies import ReplyFuture

T = TypeVar("T")


class Publish(NamedTuple):
    """Publish one message: in the caller's thread (sync), or coalesced per loop tick (async).

    `confirm_later`: the sync face may return before the broker's reply, with a `Confirmation`
    as the step's value (see `Runtime.call`); otherwise, and on the async face, the value is None.
    """

    message: Outgoing
    contract: str
    confirm_later: bool = False


class Wait(NamedTuple):
    """Wait for a future of the result thread; the step's value is the result, or `TIMED_OUT`."""

    future: concurrent.futures.Future[Any]
    timeout: float | None


class Blocking(NamedTuple):
    """A blocking call (a batch publish, a broadcast, a close): inline (sync) or on the executor (async)."""

    function: Callable[[], Any]


Step: TypeAlias = Publish | Wait | Blocking
Steps: TypeAlias = Generator[Step, Any, T]

#: The value a `Wait` step receives when its bound ran out.
TIMED_OUT: Any = object()


def run_sync(producer: Producer, steps: Steps[T]) -> T:
    """Run `steps` in this thread. An error a step meets is thrown into the steps, to map or re-raise."""
    value: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            try:
                if isinstance(step, Wait):
                    value = _wait_sync(step)
                elif isinstance(step, Publish):
                    value = producer.publish(step.message, contract=step.contract, confirm_later=step.confirm_later)
                else:
                    value = step.function()
            except Exception as caught:
                error = caught
    except BaseException:
        steps.close()  # KeyboardInterrupt and the like: let the steps stop watching
        raise


def _wait_sync(step: Wait) -> Any:
    future, timeout = step.future, step.timeout
    if isinstance(future, ReplyFuture) and not future.done():
        # Read the reply channel in this thread while nobody else does: no hand-off between threads.
        started = time.monotonic()
        future.replies.lead(future, timeout)
        if timeout is not None:
            timeout = max(0.0, timeout - (time.monotonic() - started))
    try:
        return future.result(_bounded(timeout))
    except TimeoutError:
        if not future.done():
            return TIMED_OUT
    return future.result(0)  # it finished just now, or failed with a TimeoutError of its own


async def run_async(producer: Producer, steps: Steps[T]) -> T:
    """Run `steps` without blocking the running loop on I/O. Cancelling the caller stops the steps."""
    value: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            try:
                if isinstance(step, Wait):
                    value = await _wait_async(step)
                elif isinstance(step, Publish):
                    await tick_publisher(producer).publish(step.message)
                else:
                    value = await asyncio.get_running_loop().run_in_executor(None, step.function)
            except Exception as caught:
                error = caught
    except BaseException:
        steps.close()  # asyncio.CancelledError: the steps stop watching before the caller goes
        raise


def _bounded(timeout: float | None) -> float | None:
    """A wait bound the platform can represent: `inf` or 1e12 s waits as long as a lock can
    (`threading.TIMEOUT_MAX`, about 292 years) instead of failing ("timestamp out of range")."""
    return None if timeout is None else min(timeout, threading.TIMEOUT_MAX)


async def _wait_async(step: Wait) -> Any:
    future = step.future
    if future.done():  # e.g. a record already in the watcher's memory: no hop through the loop
        return future.result()
    if isinstance(future, ReplyFuture):
        future.replies.serve()  # a loop cannot read a blocking socket: the reply channel's thread does
    if step.timeout is None:
        return await asyncio.wrap_future(future)
    bound = asyncio.timeout(_bounded(step.timeout))
    try:
        async with bound:
            return await asyncio.wrap_future(future)
    except TimeoutError:
        if not bound.expired():
            raise  # the future's own error, not our bound
        return TIMED_OUT
