"""The producer's broker connection: kombu's Redis transport (plain or Sentinel), reusing its redis-py client objects.

Hot path (measured with `bench --profile`): for every publish kombu builds a new `redis.Redis`
object around the same connection pool, ~60-150 us apiece with redis-py 8, a large part of a
publish. A client object only wraps its pool and is thread-safe, so one per pool is reused; a new
pool (after a reconnect) gets a new client. Other transports are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.app.amqp import AMQP
from kombu.connection import Connection
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
