"""The broker a test runs on: its URL, the Redis result backend beside it, and what a test does to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import amqp
import redis
from celery import Celery

from task_contracts.wire import AMQP_QUEUE_TYPE
from task_server.testing import RabbitMQProcess

from .e2e.raw_messages import amqp_connection

BROKERS = ("redis", "rabbitmq")


@dataclass(frozen=True)
class Broker:
    kind: str  # "redis" or "rabbitmq"
    url: str
    result_backend: str  # always Redis
    node: RabbitMQProcess | None = None  # the RabbitMQ node, for a test that needs one of its own vhosts

    def plain_celery(self, name: str = "plain", **config: Any) -> Celery:
        """A stock Celery app as a foreign producer would configure it for this broker."""
        app = Celery(name, broker=self.url, backend=self.result_backend, set_as_current=False)
        app.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
        if self.kind == "rabbitmq":
            # The contracts' queues are quorum queues; a producer declaring them must say so too.
            app.conf.update(task_create_missing_queue_type=AMQP_QUEUE_TYPE)
        app.conf.update(config)
        return app

    def queue_length(self, queue: str) -> int:
        """Messages waiting on `queue` (none delivered to a consumer)."""
        if self.kind == "rabbitmq":
            with amqp_connection(self.url) as connection:
                try:
                    _, count, _ = connection.channel().queue_declare(queue, passive=True)
                except amqp.exceptions.NotFound:
                    return 0  # never declared: nothing was ever published to it
                return int(count)
        with redis.Redis.from_url(self.url) as connection:
            return int(connection.llen(queue))

    def purge_queue(self, queue: str) -> None:
        """Drop every message waiting on `queue`; the queue itself stays (as declared)."""
        if self.kind == "rabbitmq":
            with amqp_connection(self.url) as connection:
                connection.channel().queue_purge(queue)
            return
        with redis.Redis.from_url(self.url) as connection:
            connection.delete(queue)

    def delete_queue(self, queue: str) -> None:
        if self.kind == "rabbitmq":
            with amqp_connection(self.url) as connection:
                connection.channel().queue_delete(queue)
            return
        with redis.Redis.from_url(self.url) as connection:
            connection.delete(queue)
