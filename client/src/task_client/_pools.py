"""The client's redis-py connection pools: a caller finding every connection busy waits a bounded
time for one, and past that bound gets an error naming the pool's limit.

redis-py's default pool raises `Too many connections` at once when its ceiling is reached: many
threads sharing one client then fail calls that a moment's wait would have served. Its
`BlockingConnectionPool` waits instead (on the queue the pool locks anyway); these subclasses only
turn its anonymous "No connection available." into `PoolExhausted`.

The threads' pool also hands connections out and takes them back in fewer steps than redis-py 8's
(the publish path's hot spot): see `BoundedPool`.
"""

from __future__ import annotations

import asyncio
import os
import queue
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.exceptions
import redis.sentinel


class PoolExhausted(redis.exceptions.ConnectionError):
    """Every connection of a pool stayed busy for the whole wait: the caller got none."""


def _exhausted(max_connections: int, timeout: float | None) -> PoolExhausted:
    return PoolExhausted(
        f"all {max_connections} connections of the client's pool stayed busy for {timeout:g} s "
        f"(max_connections={max_connections})"
    )


try:  # redis-py 8's metrics (OpenTelemetry), off unless the program turns them on
    from redis.observability.providers import get_observability_instance
except ImportError:  # redis-py before 8: none

    def _observed() -> bool:
        return False

else:

    def _observed() -> bool:
        return get_observability_instance().is_enabled()


class BoundedPool(redis.BlockingConnectionPool):
    """redis-py's blocking pool (threads): waits up to `timeout` seconds for a free connection.

    Hot path (measured): a connection is handed out and taken back in redis-py 6's steps, on the
    same queue with the same bounded wait, not redis-py 8's (no-op metric recorders, a
    deprecated-arguments wrapper and a retry wrapper around `connect` of a connected connection:
    about a quarter of the client's own CPU before its LPUSH). redis-py's own `get_connection` /
    `release` serve what those steps do not cover: a pool used after a fork (redis-py resets it),
    redis-py 8's metrics turned on, a client-side cache, a MOVING maintenance notification.

    A connection that holds data (a reply nobody read) or that the server closed is never handed
    out: it is reconnected first, as redis-py 6 does. redis-py 8 skips the first half with RESP3 and
    its maintenance notifications on ("auto", its default), even when the server has none to send.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._moving = False  # before redis-py's own __init__, which may already set it
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        # Before redis-py 8, `connect` of a connected connection returns at once: no property to read.
        self._knows_connected = hasattr(self.connection_class, "is_connected")

    def set_in_maintenance(self, in_maintenance: bool) -> None:
        """redis-py 8's hook: a MOVING notification is being handled (redis-py then locks the pool)."""
        self._moving = in_maintenance
        super().set_in_maintenance(in_maintenance)

    def _plain(self) -> bool:
        """Whether `_check_out` and the short `release` may serve: see the class's docstring."""
        return self.pid == os.getpid() and self.cache is None and not self._moving and not _observed()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if args or kwargs or not self._plain():
                return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
            return self._check_out()
        except redis.exceptions.ConnectionError as error:
            # The pool's own wait ran out (its queue stayed empty), not a connection that failed.
            if isinstance(error.__context__, queue.Empty):
                raise _exhausted(self.max_connections, self.timeout) from None
            raise

    def _check_out(self) -> Any:
        free = self.pool
        # Hot path (measured): a free connection is taken under the queue's own lock, as
        # `LifoQueue.get` takes it, without its Condition's Python steps; the queue's `get`, with its
        # bounded wait, when none is free. (Its `get` would also wake a `put` waiting for room:
        # there is none, connections go back with `put_nowait`.)
        with free.mutex:
            connection = free.queue.pop() if free.queue and type(free) is queue.LifoQueue else _NONE_FREE
        if connection is _NONE_FREE:
            try:
                connection = free.get(block=True, timeout=self.timeout)
            except queue.Empty:
                raise redis.exceptions.ConnectionError("No connection available.") from None
        if connection is None:  # a free slot (one of `max_connections`): its connection is made now
            connection = self.make_connection()  # type: ignore[no-untyped-call]
        try:
            if not (self._knows_connected and connection.is_connected):
                connection.connect()
            try:
                if connection.can_read():  # raises when the server closed it
                    raise redis.exceptions.ConnectionError("Connection has data")
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                connection.disconnect()
                connection.connect()
                if connection.can_read():
                    raise redis.exceptions.ConnectionError("Connection not ready") from None
        except BaseException:
            self.release(connection)  # not leaked: its slot goes back to the pool
            raise
        return connection

    def release(self, connection: Any) -> None:
        if not self._plain() or not self.owns_connection(connection):
            super().release(connection)  # type: ignore[no-untyped-call]
            return
        if getattr(connection, "should_reconnect", _never)():  # redis-py 8: marked by a notification
            connection.disconnect()
        free = self.pool
        # `put_nowait`'s steps under the queue's own lock, without its Condition's Python steps; a
        # full queue (the pool was reset meanwhile) drops the connection, as redis-py does.
        with free.mutex:
            if free.maxsize <= 0 or len(free.queue) < free.maxsize:
                free.queue.append(connection)
                free.unfinished_tasks += 1
                free.not_empty.notify()  # a caller waiting in `get` for a free connection


#: `_check_out` found no free connection without waiting.
_NONE_FREE: Any = object()


def _never() -> bool:
    return False


class BoundedSentinelPool(redis.sentinel.SentinelConnectionPool, BoundedPool):
    """The same wait for a Sentinel-managed master (threads)."""


class BoundedSentinel(redis.sentinel.Sentinel):
    """A `Sentinel` whose masters' pools are `BoundedSentinelPool`s (for Celery's Sentinel backend,
    which takes the module it builds its `Sentinel` from as an attribute)."""

    def master_for(
        self,
        service_name: Any,
        redis_class: Any = redis.Redis,
        connection_pool_class: Any = BoundedSentinelPool,
        **kwargs: Any,
    ) -> Any:
        return super().master_for(service_name, redis_class, connection_pool_class, **kwargs)  # type: ignore[no-untyped-call]


class AsyncBoundedPool(redis.asyncio.BlockingConnectionPool):
    """redis-py's blocking pool (asyncio): waits up to `timeout` seconds for a free connection."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.exceptions.ConnectionError as error:
            if isinstance(error.__cause__, asyncio.TimeoutError):  # the pool's wait, not a connect
                raise _exhausted(self.max_connections, self.timeout) from None
            raise


class AsyncBoundedSentinelPool(redis.asyncio.sentinel.SentinelConnectionPool, AsyncBoundedPool):
    """The same wait for a Sentinel-managed master: connections still follow the master sentinels name."""
