"""A message Redis pops into a BRPOP still waiting when the broker channel closes (a consumer
restart after another of the connection's sockets failed, say its pub/sub one was killed; a warm
shutdown) is requeued by that close, or, if Redis fails then, by the next working channel; never
delivered to consumers that are going away (a real Redis and the worker's transport)."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest
import redis
from kombu import Queue

from task_server import _unrecorded
from task_server._transport import GuardedConnection
from task_server.testing import RedisProcess, wait_until

pytestmark = pytest.mark.e2e

QUEUE = "pop-at-close"


def consuming(url: str, on_message: Any) -> GuardedConnection:
    connection = GuardedConnection(url, transport_options={"polling_interval": 30})
    channel = connection.default_channel
    Queue(QUEUE, channel=channel).declare()
    channel.basic_consume(QUEUE, True, on_message, "pop-at-close-consumer")
    return connection


def publish(url: str, payload: Any) -> None:
    with GuardedConnection(url) as producing, producing.Producer() as producer:
        producer.publish(payload, routing_key=QUEUE)


def blocked(server: redis.Redis) -> int:
    return int(server.info("clients")["blocked_clients"])


def test_a_message_popped_as_the_channel_closes_is_requeued_not_delivered(private_redis: RedisProcess) -> None:
    server = redis.Redis.from_url(private_redis.url)
    seen: list[Any] = []
    closing = consuming(private_redis.url, lambda message: seen.append(("closing", message.payload)))
    try:
        with contextlib.suppress(socket.timeout):
            closing.drain_events(timeout=0.2)  # nothing queued: its BRPOP stays waiting in Redis
        wait_until(lambda: blocked(server) == 1, 10, "the BRPOP to wait in Redis")
        publish(private_redis.url, {"n": 1})
        wait_until(lambda: blocked(server) == 0, 10, "Redis to pop the message into the waiting BRPOP")
        assert server.llen(QUEUE) == 0
    finally:
        closing.close()  # kombu's close reads the BRPOP's reply: the message is in it
    assert seen == []  # not handed to a consumer that is going away
    # Requeued by the close itself, while Redis answers: the worker may be stopping for good (a warm
    # shutdown), and then no later channel requeues it (held in memory, it was lost at exit).
    assert not _unrecorded.pending()
    assert server.llen(QUEUE) == 1

    reconnected = consuming(private_redis.url, lambda message: seen.append(("reconnected", message.payload)))
    try:
        with contextlib.suppress(socket.timeout):
            reconnected.drain_events(timeout=10)  # requeued before its first pop, then popped
        assert seen == [("reconnected", {"n": 1})]
        assert not _unrecorded.pending()
    finally:
        reconnected.close()
        server.close()
