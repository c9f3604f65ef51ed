"""Closing the worker's broker channel ends its pending BRPOP at once (CLIENT UNBLOCK) instead of
waiting out the BRPOP's timeout, and an item the BRPOP had already popped goes back to its queue
(`tests/server/test_pop_at_close.py`: never to consumers that are going away)."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Queue

from task_server._internals.channel import polling
from task_server._transport import GuardedConnection
from task_server.testing import RedisProcess, wait_until

pytestmark = pytest.mark.e2e

LONG_POP = 60.0  # seconds a BRPOP waits here; kombu's close would wait that long for its reply
QUEUE = "pending-pop"


def pending_pop(url: str, received: list[Any]) -> GuardedConnection:
    """A consuming channel of the worker's transport whose BRPOP is sent and unanswered."""
    connection = GuardedConnection(url, transport_options={"polling_interval": LONG_POP})
    channel = connection.default_channel
    Queue(QUEUE, channel=channel).declare()
    channel.basic_consume(QUEUE, True, received.append, "pending-pop-consumer")
    with contextlib.suppress(socket.timeout):
        connection.drain_events(timeout=0.2)  # sends the BRPOP, then gives up waiting for it
    assert polling(channel)
    return connection


def test_closing_ends_a_pending_brpop_at_once(private_redis: RedisProcess) -> None:
    server = redis.Redis.from_url(private_redis.url)
    connection = pending_pop(private_redis.url, [])
    assert server.info("clients")["blocked_clients"] == 1

    began = time.monotonic()
    connection.close()

    assert time.monotonic() - began < LONG_POP / 2  # not the BRPOP's timeout
    assert server.info("clients")["blocked_clients"] == 0


def test_an_item_the_brpop_popped_before_the_close_goes_back_to_its_queue(private_redis: RedisProcess) -> None:
    server = redis.Redis.from_url(private_redis.url)
    received: list[Any] = []
    connection = pending_pop(private_redis.url, received)
    with GuardedConnection(private_redis.url) as producing, producing.Producer() as producer:
        producer.publish({"n": 1}, routing_key=QUEUE)
    # Redis hands the item to the blocked BRPOP at once; its reply waits, unread, on the socket.
    wait_until(lambda: server.info("clients")["blocked_clients"] == 0, 30, "the BRPOP to pop the item")
    assert server.llen(QUEUE) == 0

    connection.close()

    assert received == []  # not handed to a consumer that is going away
    assert server.llen(QUEUE) == 1  # requeued by the close itself


def test_closing_ends_a_pending_brpop_at_once_over_ipv6(tmp_path: Path) -> None:
    """Redis names an IPv6 client `[::1]:port` in CLIENT LIST; the BRPOP's connection is found there too."""
    with RedisProcess(workdir=str(tmp_path), extra_args=["--bind", "127.0.0.1", "::1"]) as process:
        process.start()
        url = f"redis://[::1]:{process.port}/0"
        server = redis.Redis.from_url(url)
        connection = pending_pop(url, [])
        assert server.info("clients")["blocked_clients"] == 1

        began = time.monotonic()
        connection.close()

        assert time.monotonic() - began < LONG_POP / 2  # not the BRPOP's timeout
        assert server.info("clients")["blocked_clients"] == 0
        server.close()


def test_the_brpop_and_its_probe_go_to_redis_in_one_write(private_redis: RedisProcess, monkeypatch: Any) -> None:
    connection = GuardedConnection(private_redis.url, transport_options={"polling_interval": LONG_POP})
    try:
        channel = connection.default_channel
        Queue(QUEUE, channel=channel).declare()
        channel.basic_consume(QUEUE, True, lambda message: None, "one-write-consumer")
        writes: list[bytes] = []
        connection_class = channel.client.connection_pool.connection_class
        send = connection_class.send_packed_command

        def recorded(self: Any, command: Any, check_health: bool = True) -> None:
            if self is channel.client.connection:
                chunks = [command] if isinstance(command, bytes | str) else command
                writes.append(b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in chunks))
            send(self, command, check_health)

        monkeypatch.setattr(connection_class, "send_packed_command", recorded)
        with contextlib.suppress(socket.timeout):
            connection.drain_events(timeout=0.2)  # sends the BRPOP and the probe behind it
        assert polling(channel)
        assert len(writes) == 1, writes
        assert b"BRPOP" in writes[0] and b"EVAL" in writes[0]
    finally:
        monkeypatch.undo()
        connection.close()
