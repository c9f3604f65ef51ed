"""The client's redis-py connection pools: a caller finding every connection busy waits a bounded
time for one, and past that bound gets an error naming the pool's limit.

redis-py's default pool raises `Too many connections` at once when its ceiling is reached: many
threads sharing one client then fail calls that a moment's wait would have served. Its
`BlockingConnectionPool` waits instead (on the queue the pool locks anyway); these subclasses only
turn its anonymous "No connection available." into `PoolExhausted`.
"""

from __future__ import annotations

import asyncio
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


class BoundedPool(redis.BlockingConnectionPool):
    """redis-py's blocking pool (threads): waits up to `timeout` seconds for a free connection."""

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.exceptions.ConnectionError as error:
            # The pool's own wait ran out (its queue stayed empty), not a connection that failed.
            if isinstance(error.__context__, queue.Empty):
                raise _exhausted(self.max_connections, self.timeout) from None
            raise


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
