"""The producer's broker connection: kombu's Redis transport (plain or Sentinel), reusing its redis-py client
objects; connections and producers of each client's own (`PublishingCelery`).

Hot path (measured with `bench --profile`): for every publish kombu builds a new `redis.Redis`
object around the same connection pool, ~60-150 us apiece with redis-py 8, a large part of a
publish. A client object only wraps its pool and is thread-safe, so one per pool is reused; a new
pool (after a reconnect) gets a new client. Other transports are left as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.pools import ProducerPool
from kombu.transport import redis as kombu_redis

#: Dotted path given to `Celery(amqp=...)`.
PRODUCER_AMQP = f"{__name__}:ProducerAMQP"


class ReusingChannel(kombu_redis.Channel):
    """Reuses the client kombu makes for its synchronous commands (publishes among them), through
    `conn_or_acquire`, the public method those commands take their client from: no private name."""

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client is not None:
            yield client
            return
        reused = self.__dict__.get("sync_client")
        if reused is None or reused.connection_pool is not self.pool:
            with super().conn_or_acquire() as reused:  # kombu's: a new client on the channel's pool
                self.__dict__["sync_client"] = reused
        yield reused


class ReusingTransport(kombu_redis.Transport):
    Channel = ReusingChannel


class ReusingSentinelChannel(ReusingChannel, kombu_redis.SentinelChannel):
    """The same for a Sentinel broker: the client reused is the one on the master's pool."""


class ReusingSentinelTransport(kombu_redis.SentinelTransport):
    Channel = ReusingSentinelChannel


#: kombu's transport names, with the reusing transport each gets.
_REUSING = {"redis": ReusingTransport, "sentinel": ReusingSentinelTransport}


class ReusingConnection(Connection):
    """A `redis://` or `sentinel://` connection uses the reusing transport; any other keeps its own.

    The class itself (not an alias) is kept as the transport, so that the pooled copies Celery
    makes of this connection for publishing use it too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        if isinstance(self.transport_cls, str) and self.transport_cls in _REUSING:
            self.transport_cls = _REUSING[self.transport_cls]


class ProducerAMQP(AMQP):  # type: ignore[misc]
    Connection = ReusingConnection

    @cached_property
    def producer_pool(self) -> ProducerPool:
        """Producers of this app's own, on its own connections (`PublishingCelery.pool`)."""
        return ProducerPool(self.app.pool, limit=self.app.pool.limit)  # type: ignore[no-untyped-call]


class PublishingCelery(Celery):  # type: ignore[misc]
    """A Celery app whose broker connections are its own, closed with it.

    Celery takes an app's connections and producers from kombu's pools of the whole process, one
    per broker URL, and its `close()` leaves them open: every client of a process on one broker
    shared connections with the others, kept those of closed ones, and a forked child took its
    parent's (kombu empties those pools only in children that multiprocessing starts), both then
    reading and writing one socket.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_pool_lock = threading.Lock()

    @property
    def pool(self) -> Any:
        with self._own_pool_lock:
            pool = self.__dict__.get("own_pool")
            if pool is None:
                pool = self.__dict__["own_pool"] = self.connection_for_write().Pool(limit=self.conf.broker_pool_limit)
            return pool

    def close(self) -> None:
        with self._own_pool_lock:
            pool = self.__dict__.pop("own_pool", None)
        if pool is not None:
            pool.force_close_all()
        super().close()
