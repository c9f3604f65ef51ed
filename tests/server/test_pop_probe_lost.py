"""A BRPOP's item is never lost when the connection fails between the BRPOP's reply and the reply of
the probe sent behind it (`_recorded_pop`): the item is kept and requeued by the next working channel."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest
import redis
from kombu import Queue

from task_server._internals.channel import polling
from task_server._transport import GuardedConnection
from task_server.testing import RedisProcess, wait_until

pytestmark = pytest.mark.e2e

QUEUE = "probe-lost"


def consuming(url: str, received: list[Any]) -> GuardedConnection:
    connection = GuardedConnection(url, transport_options={"polling_interval": 60.0})
    channel = connection.default_channel
    Queue(QUEUE, channel=channel).declare()
    channel.basic_consume(QUEUE, True, received.append, "probe-lost-consumer")
    return connection


def test_an_item_popped_before_the_probe_reply_is_lost_comes_back(private_redis: RedisProcess) -> None:
    server = redis.Redis.from_url(private_redis.url)
    received: list[Any] = []
    connection = consuming(private_redis.url, received)
    with contextlib.suppress(socket.timeout):
        connection.drain_events(timeout=0.2)  # sends the BRPOP and its probe
    channel = connection.default_channel
    assert polling(channel)
    with GuardedConnection(private_redis.url) as producing, producing.Producer() as producer:
        producer.publish({"n": 1}, routing_key=QUEUE)
    wait_until(lambda: server.llen(QUEUE) == 0, 30, "the BRPOP to pop the item")

    # The connection breaks after the BRPOP's reply is read, before the probe's is.
    broker = channel.client.connection
    read_response = broker.read_response
    replies = iter([read_response])

    def break_after_brpop(*args: Any, **kwargs: Any) -> Any:
        read = next(replies, None)
        if read is None:
            raise redis.exceptions.ConnectionError("connection lost between the BRPOP's and the probe's replies")
        return read(*args, **kwargs)

    broker.read_response = break_after_brpop  # type: ignore[method-assign]
    with pytest.raises(redis.exceptions.ConnectionError):
        connection.drain_events(timeout=5)
    del broker.read_response
    assert received == []
    connection.close()

    # The next working channel puts it back before it pops, and takes it.
    received_again: list[Any] = []
    again = consuming(private_redis.url, received_again)
    try:
        wait_until(lambda: _drained(again) or bool(received_again), 30, "the item to be delivered again")
    finally:
        again.close()
    assert [message.payload for message in received_again] == [{"n": 1}]


def _drained(connection: GuardedConnection) -> bool:
    with contextlib.suppress(socket.timeout):
        connection.drain_events(timeout=0.2)
    return False
