"""The worker's broker connection: kombu's Redis transport (plain or Sentinel), except that an item on a queue that
is not a Celery envelope at all (not JSON, or JSON of another shape) is dropped with a log line,
and that the channel reuses its redis-py client objects.

kombu parses each item it pops inside its event loop; one unreadable item raises there and
stops the whole worker ("Unrecoverable error"), so any producer able to LPUSH could take every
worker down. Message bodies are checked later, per task, by `_intake`.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis

#: Dotted path given to `Celery(amqp=...)`.
WORKER_AMQP = f"{__name__}:WorkerAMQP"

# What parsing or wrapping a malformed item raises (JSONDecodeError and UnicodeDecodeError are ValueErrors).
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError)

logger = logging.getLogger(__name__)


class _Guarded:
    # Hot path (measured with `bench --profile`): kombu builds a new `redis.Redis` object for every
    # command sequence on the synchronous pool (each delivery's unacked bookkeeping and each ack),
    # ~60-150 us apiece with redis-py 8. Such a client only wraps its connection pool and is
    # thread-safe, so one per pool is reused; a new pool (after a reconnect) gets a new client.
    # Asynchronous clients are left alone: kombu pins a connection on each of them.
    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool  # type: ignore[attr-defined]
        client = self.__dict__.get("_sync_client")
        if client is None or client.connection_pool is not pool:
            client = self.__dict__["_sync_client"] = super()._create_client()  # type: ignore[misc]
        return client

    def _brpop_read(self, **options: Any) -> bool:
        try:
            delivered: bool = super()._brpop_read(**options)  # type: ignore[misc]
        except _UNREADABLE as error:
            # BRPOP already removed the item: nothing is left to requeue or redeliver.
            logger.error("dropped an item on a task queue that is not a Celery message envelope: %r", error)
            return False
        return delivered


class GuardedChannel(_Guarded, kombu_redis.Channel):
    pass


class GuardedSentinelChannel(_Guarded, kombu_redis.SentinelChannel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            # The master is gone and kombu is closing this channel after closing its connection; on
            # the way it tries to restore unacked messages through a new pool built from that closed
            # connection, and its AttributeError stopped the worker ("Unrecoverable error"). A
            # connection error is what the close path expects and Celery reconnects through the
            # sentinels; the unacked messages come back after the visibility timeout.
            raise redis.exceptions.ConnectionError("the broker connection is closed (Sentinel failover)")
        return super()._connparams(asynchronous)  # type: ignore[no-untyped-call]


class GuardedTransport(kombu_redis.Transport):
    Channel = GuardedChannel


class GuardedSentinelTransport(kombu_redis.SentinelTransport):
    Channel = GuardedSentinelChannel


# RabbitMQ keeps headers and body apart, so no item can break kombu's parsing there.
_GUARDED = {kombu_redis.Transport: GuardedTransport, kombu_redis.SentinelTransport: GuardedSentinelTransport}


class GuardedConnection(Connection):
    """Resolves the URL as usual (TLS included), then uses the guarded transport on Redis and Sentinel."""

    def get_transport_cls(self) -> Any:
        transport = super().get_transport_cls()  # type: ignore[no-untyped-call]
        return _GUARDED.get(transport, transport)


class WorkerAMQP(AMQP):  # type: ignore[misc]
    Connection = GuardedConnection
