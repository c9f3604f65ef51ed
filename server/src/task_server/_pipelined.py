"""Redis commands written without waiting for their replies, the replies read later, in order.

The worker writes two kinds of commands whose replies it does not need at once: kombu's unacked
record (`_unacked`, read back before the next write) and early admissions (`_preadmission`, read by
the thread that runs the call). Both go on a connection of their own, taken from a pool and kept
out of it until dropped; each reply is read by whoever needs one first, in the order the commands
were written.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis.exceptions
from hiredis import pack_command

from ._internals.replies import read_reply

Reply = Callable[[], Any]

#: Seconds a connection may have stood idle (no reply due) before a write first checks that Redis has
#: not closed it: its `timeout` setting, a proxy's idle limit, a restart. A command written there is
#: lost with its reply (an early admission then decided 'unrecorded', a store retried with a
#: traceback, an unacked entry failed and restarted the consumer). redis-py's pool checks a
#: connection so at each checkout; this one stays out of the pool.
IDLE_CHECK_AFTER = 0.5

_pipelines: dict[tuple[int, int], PipelinedConnection] = {}
_pipelines_lock = threading.Lock()


def pipeline_for(pool: Any) -> PipelinedConnection:
    """The pipelined connection of a result-backend connection pool: one per pool and process (a
    pool process forked later must not share its parent's socket)."""
    key = (os.getpid(), id(pool))
    with _pipelines_lock:
        pipeline = _pipelines.get(key)
        if pipeline is None or pipeline.pool is not pool:
            pipeline = _pipelines[key] = PipelinedConnection(pool)
        return pipeline


@contextlib.contextmanager
def holding_writes() -> Iterator[None]:
    """The commands this process's pipelined connections are given inside, written at the end in one
    write each (or earlier, once a reply of one is wanted): the admissions the event loop asks for
    a burst of deliveries read at once (`_internals.amqp_reads`) go to Redis together."""
    pid = os.getpid()
    with _pipelines_lock:
        pipelines = [pipeline for (owner, _), pipeline in _pipelines.items() if owner == pid]
    for pipeline in pipelines:
        pipeline.hold()
    try:
        yield
    finally:
        for pipeline in pipelines:
            pipeline.flush(keep_holding=False)


class PipelinedConnection:
    """Commands written on one connection without waiting; each reply read, in order, by whoever
    needs one first (any thread). One per result-backend connection pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._send_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._connection: Any = None
        self._unread: collections.deque[PendingReply] = collections.deque()
        self._held: list[bytes] | None = None  # commands packed but not written yet (`holding_writes`)
        self._used_at = 0.0  # when a command was last given (`IDLE_CHECK_AFTER`)

    def send(self, *command: Any) -> PendingReply:
        """Write `command`; call what is returned for its reply (or the error it met)."""
        (reply,) = self.send_many([command])
        return reply

    def send_many(self, commands: Sequence[Sequence[Any]]) -> list[PendingReply]:
        """Write `commands` in one write (one wake-up of Redis, not one each); their replies, in order."""
        with self._send_lock:
            connection = None
            try:
                now = time.monotonic()
                idle = self._connection is not None and not self._unread and now - self._used_at > IDLE_CHECK_AFTER
                if idle and _closed(self._connection):
                    self._drop(self._connection)
                self._used_at = now
                if self._connection is None:
                    # Kept out of the pool until dropped: its replies are read here, possibly by another thread.
                    self._connection = self.pool.get_connection()
                    self._unread = collections.deque()
                connection = self._connection
                replies = [PendingReply(self, connection, self._unread) for _ in commands]
                if self._held is not None:
                    self._held += _packed(commands)  # written by `flush`, before any reply is read
                else:
                    # No health check: its PING would read a reply that belongs to an earlier command.
                    connection.send_packed_command(_packed(commands), check_health=False)
            except (redis.exceptions.ConnectionError, OSError) as error:
                if connection is not None:
                    self._drop(connection)
                failed = [PendingReply(self, connection, collections.deque()) for _ in commands]
                for reply in failed:
                    reply.fail(error)
                return failed
            self._unread.extend(replies)
            return replies

    def flush(self, *, keep_holding: bool = True) -> None:
        """Write the commands held so far (`holding_writes`), in one write."""
        with self._send_lock:
            held, self._held = self._held, ([] if keep_holding and self._held is not None else None)
            connection = self._connection
            if not held or connection is None:
                return
            try:
                connection.send_packed_command([b"".join(held)], check_health=False)
            except (redis.exceptions.ConnectionError, OSError):
                self._drop(connection)  # whoever reads a reply of it now meets the lost connection

    def read_until(self, reply: PendingReply) -> None:
        if self._held:
            self.flush()  # the command may be among those held: written before anything is read
        with self._read_lock:
            while not reply.done:
                unread = reply.unread
                try:
                    value: Any = read_reply(reply.connection)
                except redis.exceptions.ResponseError as error:
                    value = error
                except (redis.exceptions.RedisError, OSError, ValueError, AttributeError) as error:
                    if isinstance(error, ValueError | AttributeError):
                        # Another thread dropped the connection (a failed send) while this one read
                        # from it, as when Redis crashes: "I/O operation on closed file", or the
                        # parser's buffer already gone ("'NoneType' object has no attribute 'readline'").
                        error = redis.exceptions.ConnectionError(f"the connection was closed while reading: {error}")
                    with self._send_lock:
                        self._drop(reply.connection)
                    while unread:
                        unread.popleft().fail(error)
                    return
                unread.popleft().settle(value)

    def hold(self) -> None:
        """Hold the commands given from now on until `flush` (see `holding_writes`)."""
        with self._send_lock:
            if self._held is None:
                self._held = []

    def close(self) -> None:
        """Give the connection back (disconnected: replies still unread must not reach another user)."""
        with self._send_lock:
            if self._connection is not None:
                self._drop(self._connection)

    def _drop(self, connection: Any) -> None:
        connection.disconnect()  # its unread replies must not reach another user
        if self._connection is connection:
            self.pool.release(connection)
            self._connection = None
            if self._held:
                # Held for the lost connection (their replies wait there, and fail with it): written
                # on the next one, they would answer that one's commands in their place.
                self._held = []


class PendingReply:
    """The reply of one command sent: call it for the reply (reading up to it) or the error it met."""

    def __init__(self, owner: PipelinedConnection, connection: Any, unread: collections.deque[PendingReply]) -> None:
        self.owner, self.connection, self.unread = owner, connection, unread
        self.done = False
        self.again: Any = None  # what its sender asks again should the reply be lost (`_admission`)
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


def _closed(connection: Any) -> bool:
    """Whether an idle connection (no reply due) has been closed by Redis: anything to read is its end."""
    try:
        return bool(connection.can_read(timeout=0))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return True


def _packed(commands: Sequence[Sequence[Any]]) -> list[bytes]:
    # By hiredis straight away (redis-py's packer calls it too, after a look at every argument in
    # Python), in one piece: redis-py writes each piece of the list with a system call of its own.
    return [b"".join([pack_command(tuple(command)) for command in commands])]
