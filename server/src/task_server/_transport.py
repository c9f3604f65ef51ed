"""The worker's broker connection: kombu's Redis transport, except that an item on a queue that
is not a Celery envelope at all (not JSON, or JSON of another shape) is dropped with a log line.

kombu parses each item it pops inside its event loop; one unreadable item raises there and
stops the whole worker ("Unrecoverable error"), so any producer able to LPUSH could take every
worker down. Message bodies are checked later, per task, by `_intake`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis

#: Dotted path given to `Celery(amqp=...)`.
WORKER_AMQP = f"{__name__}:WorkerAMQP"

# What parsing or wrapping a malformed item raises (JSONDecodeError and UnicodeDecodeError are ValueErrors).
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError)

logger = logging.getLogger(__name__)


class GuardedChannel(kombu_redis.Channel):
    def _brpop_read(self, **options: Any) -> bool:
        try:
            delivered: bool = super()._brpop_read(**options)  # type: ignore[no-untyped-call]
        except _UNREADABLE as error:
            # BRPOP already removed the item: nothing is left to requeue or redeliver.
            logger.error("dropped an item on a task queue that is not a Celery message envelope: %r", error)
            return False
        return delivered


class GuardedTransport(kombu_redis.Transport):
    Channel = GuardedChannel


class GuardedConnection(Connection):
    """Resolves `redis://` and `rediss://` as usual (TLS included), then uses the guarded transport."""

    def get_transport_cls(self) -> Any:
        transport = super().get_transport_cls()  # type: ignore[no-untyped-call]
        return GuardedTransport if transport is kombu_redis.Transport else transport


class WorkerAMQP(AMQP):  # type: ignore[misc]
    Connection = GuardedConnection
