"""Contracts whose author declared `on_event_loop=True` run on the worker's event loop itself.

A contract declared `cpu_bound=False` is served from threads (`_threads`). Handing each call to a
thread and back costs a wake-up of each side and the GIL passing between them, a large part of a
small call's round trip (measured on `client.add(4, 7)`, p50 of blocks of 1,000 sequential calls:
0.63-0.88 ms on a thread, a steady 0.55 ms on the loop). Running a call on the loop, as Celery's
solo pool runs every call, trades safety for that: while it runs, the worker process consumes,
acknowledges and answers nothing, and a call that hangs there stops the process for good. So only
the contract's author decides it, for code that cannot wait on anything; it is never inferred
from how quick past runs were. As a guard, the first run there that takes longer than `SLOW`
sends the contract to the threads for the rest of the process's life, with a warning. On
RabbitMQ its calls go to the threads while the worker is busy too (`LoopPool`).
`--no-inline` keeps every call on threads.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from billiard.einfo import ExceptionInfo
from celery.concurrency.base import BasePool, apply_target
from celery.worker.state import reserved_requests

from ._internals.amqp_reads import buffered

#: `app.conf` key: whether contracts declared `on_event_loop=True` run there (`--inline/--no-inline`).
INLINE_SETTING = "task_sdk_inline"
SLOW = 0.010
#: Seconds a contract's calls keep going to the threads after the worker was last seen busy (see
#: `LoopPool`), so that a run of concurrent calls is served on threads as a whole.
BUSY_SPELL = 0.010

logger = logging.getLogger(__name__)


class LoopServing:
    """Which contracts declared for the event loop this worker process has sent back to the threads."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._kept_off: set[str] = set()

    def on_loop(self, name: str) -> bool:
        return name not in self._kept_off

    def record(self, name: str, seconds: float) -> None:
        """Note how long a run on the loop took; the first one over `SLOW` sends `name` to threads."""
        if seconds > SLOW and name not in self._kept_off:
            self._kept_off.add(name)
            logger.warning(
                "%s took %.0f ms on the worker's event loop although declared on_event_loop; "
                "its calls run on threads from now on",
                name,
                seconds * 1000,
            )


_serving: LoopServing | None = None


def loop_serving() -> LoopServing:
    """This worker process's record (made in the main process, when contracts for the loop are served)."""
    global _serving
    if _serving is None or _serving.pid != os.getpid():
        _serving = LoopServing()
    return _serving


def note_run(name: str, seconds: float) -> None:
    """Record how long a run of a contract declared for the loop took, when it ran there."""
    serving = _serving
    if serving is not None and _turn.running:  # only the loop's pool sets it, in this process
        serving.record(name, seconds)


class _OnTheLoop(BasePool):  # type: ignore[misc]
    """Runs each call at once in the calling thread (the event loop's), as Celery's solo pool."""

    def __init__(self, app: Any) -> None:
        super().__init__(limit=1, app=app)
        self.on_apply = _apply_on_the_loop
        # Started as Celery starts a pool: a pool never started logs every call at DEBUG, building
        # the repr of its arguments each time (two reprs and two truncations per call on the loop).
        self.start()


class _Turn(threading.local):
    running = False  # whether this thread is running a call on the event loop (`_apply_on_the_loop`) now


_turn = _Turn()


def running_on_the_loop() -> bool:
    """Whether this thread is the event loop's, running a call there now (its callbacks included):
    what Celery defers to the loop's next turn (`call_soon`) may then be done at once, in order."""
    return _turn.running


def _apply_on_the_loop(target: Any, args: Any = (), kwargs: Any = None, **options: Any) -> Any:
    """Celery's `apply_target`, except that an error outside the task's body (its failure record
    refused by a full Redis, or Redis gone after the store retries) fails that call, as in a pool
    process, instead of escaping into the consumer loop and stopping the worker."""
    try:
        _turn.running = True
        try:
            return apply_target(target, args, kwargs, **options)
        finally:
            _turn.running = False
    except Exception as error:
        logger.error("a call on the event loop failed outside its body: %r", error)
        error_callback = options.get("error_callback")
        if error_callback is not None:
            try:
                error_callback(ExceptionInfo())
            except Exception as callback_error:
                logger.error("and its failure could not be handled: %r", callback_error)
        return None


class LoopPool:
    """The pool a contract declared `on_event_loop` is given: the loop, or the threads once sent back.

    On RabbitMQ a call goes to the threads too while the worker is busy (`BUSY_SPELL`): a call on
    the loop holds it through the call's two Redis round trips (admission, store), and meanwhile
    the deliveries behind it wait unread; threads overlap those waits and leave the loop to read.
    A lone caller's calls still run on the loop.
    """

    def __init__(
        self, threads: BasePool, name: str, app: Any, consumer: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threads = threads
        self._loop = _OnTheLoop(app)
        self._name = name
        self._serving = loop_serving()
        self._consumer = consumer
        self._clock = clock
        self._busy_until = 0.0
        self.limit = threads.limit

    def apply_async(self, target: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        on_loop = self._serving.on_loop(self._name) and not self._busy()
        pool = self._loop if on_loop else self._threads
        return pool.apply_async(target, args, kwargs, **options)

    def _busy(self) -> bool:
        """On RabbitMQ: whether other calls are in the worker's hands (received, not finished), more
        frames wait on the broker's socket, or either was so less than `BUSY_SPELL` ago."""
        connection = broker_connection(self._consumer)
        if connection is None:
            return False  # Redis: the loop, as its bench rows were measured
        now = self._clock()
        if now < self._busy_until or len(reserved_requests) > 1 or buffered(connection) or _readable(connection.sock):
            self._busy_until = now + BUSY_SPELL
            return True
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._threads, name)


def broker_connection(consumer: Any) -> Any:
    """The consumer's RabbitMQ connection (py-amqp's, with its socket), or None: another broker, or
    a connection not established (asking kombu for it then would connect, on the loop)."""
    connection = getattr(consumer, "connection", None)
    if connection is None or connection.transport.driver_type != "amqp" or not connection.connected:
        return None
    amqp_connection = connection.connection
    return amqp_connection if getattr(amqp_connection, "sock", None) is not None else None


def _readable(sock: Any) -> bool:
    # Bytes left on the socket are more frames (those already read wait in py-amqp's buffer).
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):  # closed meanwhile: the consumer is reconnecting
        return False
    return bool(readable)
