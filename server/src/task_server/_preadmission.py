"""Admission asked for as a call is handed to a thread, and answered by the time the thread starts it.

A call served by the worker's threads (`_threads`) used to ask Redis whether it may start
(`_admission`) from its thread: a round trip after the thread had woken up, on the path of every
call (~130 µs in a timeline of `client.add(4, 7)`). When a thread is free to start the call at
once, the main thread now writes that same script as it hands the call over, without waiting;
by the time the thread has woken and set the call up, the reply is usually there to be read.

Only then: a call that would wait for a thread keeps asking from its thread, so its start is
counted, its running mark set and its concurrency slot taken when it starts, not while it waits
(a cancel meanwhile still stops it). The verdict and what the worker does with it are unchanged.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

import redis.exceptions

#: Verdicts asked for and not yet claimed, at most (one for a call that was then not run, e.g.
#: its arguments were invalid, is dropped after this many newer ones).
MAX_WAITING = 10_000

Reply = Callable[[], Any]


class PipelinedConnection:
    """Commands written on one connection without waiting; each reply read, in order, by whoever
    needs one first (any thread). One per result-backend connection pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._send_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._connection: Any = None
        self._unread: collections.deque[_Reply] = collections.deque()

    def send(self, *command: Any) -> Reply:
        """Write `command`; call what is returned for its reply (or the error it met)."""
        with self._send_lock:
            if self._connection is None:
                # Kept out of the pool until dropped: its replies are read here, possibly by another thread.
                self._connection = self.pool.get_connection()
                self._unread = collections.deque()
            reply = _Reply(self, self._connection, self._unread)
            try:
                # No health check: its PING would read a reply that belongs to an earlier command.
                self._connection.send_command(*command, check_health=False)
            except (redis.exceptions.ConnectionError, OSError) as error:
                self._drop(self._connection)
                reply.fail(error)
                return reply
            self._unread.append(reply)
            return reply

    def read_until(self, reply: _Reply) -> None:
        with self._read_lock:
            while not reply.done:
                unread = reply.unread
                try:
                    value: Any = reply.connection.read_response()
                except redis.exceptions.ResponseError as error:
                    value = error
                except (redis.exceptions.RedisError, OSError) as error:
                    with self._send_lock:
                        self._drop(reply.connection)
                    while unread:
                        unread.popleft().fail(error)
                    return
                unread.popleft().settle(value)

    def _drop(self, connection: Any) -> None:
        connection.disconnect()  # its unread replies must not reach another user
        if self._connection is connection:
            self.pool.release(connection)
            self._connection = None


class _Reply:
    def __init__(self, owner: PipelinedConnection, connection: Any, unread: collections.deque[_Reply]) -> None:
        self.owner, self.connection, self.unread = owner, connection, unread
        self.done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def settle(self, value: Any) -> None:
        self._value, self.done = value, True

    def fail(self, error: BaseException) -> None:
        self._error, self.done = error, True

    def __call__(self) -> Any:
        if not self.done:
            self.owner.read_until(self)
        if self._error is not None:
            raise self._error
        if isinstance(self._value, BaseException):
            raise self._value
        return self._value


_asked: collections.OrderedDict[tuple[str, int], Reply] = collections.OrderedDict()
_asked_lock = threading.Lock()
_pipelines: dict[int, PipelinedConnection] = {}


def pipeline_for(pool: Any) -> PipelinedConnection:
    """The pipelined connection of a result-backend connection pool (one each)."""
    with _asked_lock:
        pipeline = _pipelines.get(id(pool))
        if pipeline is None or pipeline.pool is not pool:
            pipeline = _pipelines[id(pool)] = PipelinedConnection(pool)
        return pipeline


def remember_asked(task_id: str, retries: int, reply: Reply) -> None:
    """Keep the pending verdict of one start of a call until its thread claims it."""
    with _asked_lock:
        _asked[(task_id, retries)] = reply
        while len(_asked) > MAX_WAITING:
            _asked.popitem(last=False)


def claim_admission(task_id: str, retries: int) -> Reply | None:
    """The verdict asked for this start of the call as it was handed over, or None if none was."""
    if not _asked:
        return None
    with _asked_lock:
        return _asked.pop((task_id, retries), None)
