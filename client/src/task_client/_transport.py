"""The producer's broker connection: kombu's Redis transport, reusing its redis-py client objects.

Hot path (measured with `bench --profile`): for every publish kombu builds a new `redis.Redis`
object around the same connection pool, ~60-150 us apiece with redis-py 8, a large part of a
publish. A client object only wraps its pool and is thread-safe, so one per pool is reused; a new
pool (after a reconnect) gets a new client. Other transports are left as they are.
"""

from __future__ import annotations

from typing import Any

from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis

#: Dotted path given to `Celery(amqp=...)`.
PRODUCER_AMQP = f"{__name__}:ProducerAMQP"


class ReusingChannel(kombu_redis.Channel):
    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # kombu pins a connection on each asynchronous client: leave them alone
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool
        client = self.__dict__.get("_sync_client")
        if client is None or client.connection_pool is not pool:
            client = self.__dict__["_sync_client"] = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class ReusingTransport(kombu_redis.Transport):
    Channel = ReusingChannel


class ReusingConnection(Connection):
    """A plain `redis://` connection uses the reusing transport; any other keeps its own.

    The class itself (not an alias) is kept as the transport, so that the pooled copies Celery
    makes of this connection for publishing use it too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        if self.transport_cls == "redis":
            self.transport_cls = ReusingTransport


class ProducerAMQP(AMQP):  # type: ignore[misc]
    Connection = ReusingConnection
