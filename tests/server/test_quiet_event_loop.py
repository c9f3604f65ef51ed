"""The worker's event loop does not register again, on every turn, what it has registered already
(`_internals.event_loop`): no failing `epoll_ctl` a turn, and messages still arrive."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from kombu import Queue
from kombu.asynchronous import Hub

from task_server._internals.event_loop import quiet_remove_writer
from task_server._transport import GuardedConnection
from task_server.testing import RedisProcess

QUEUE = "quiet-turns"


def spy(poller: Any, method: str) -> list[int]:
    """The fds passed to `poller.<method>` from now on (the call still happens)."""
    calls: list[int] = []
    original = getattr(poller, method)

    def recorded(fd: Any, *args: Any) -> Any:
        calls.append(fd if isinstance(fd, int) else fd.fileno())
        return original(fd, *args)

    setattr(poller, method, recorded)
    return calls


@pytest.mark.e2e
def test_the_redis_transport_registers_its_sockets_once_and_still_delivers(private_redis: RedisProcess) -> None:
    received: list[Any] = []
    hub = Hub()
    connection = GuardedConnection(private_redis.url)
    try:
        channel = connection.default_channel
        Queue(QUEUE, channel=channel).declare()
        channel.basic_consume(QUEUE, True, lambda message: received.append(message.payload), "quiet-consumer")
        registered = spy(hub.poller, "register")
        connection.transport.register_with_event_loop(connection.connection, hub)
        for _ in range(2):
            for tick in list(hub.on_tick):
                tick()
        first = list(registered)
        assert first, "the first turns register the BRPOP socket"
        for _ in range(5):
            for tick in list(hub.on_tick):
                tick()
        assert registered == first, "later turns must not register the same sockets again"

        with GuardedConnection(private_redis.url) as producing, producing.Producer() as producer:
            producer.publish({"n": 1}, routing_key=QUEUE)
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            hub.run_once()
        assert received == [{"n": 1}]
    finally:
        connection.close()
        hub.close()


def test_removing_a_writer_the_hub_does_not_have_leaves_the_poller_alone() -> None:
    hub = Hub()
    reading, writing = socket.socketpair()
    try:
        quiet_remove_writer(hub)
        quiet_remove_writer(hub)  # twice changes nothing
        unregistered = spy(hub.poller, "unregister")

        hub.remove_writer(writing)  # never added: what Celery's prefork pool does on every turn
        assert unregistered == []

        hub.add_writer(writing, lambda: None)
        hub.remove_writer(writing)
        assert unregistered == [writing.fileno()]
        assert writing.fileno() not in hub.writers

        hub.add_reader(reading, lambda: None)
        hub.remove_writer(reading.fileno())  # a reader keeps being read, as with the hub's own removal
        assert reading.fileno() in hub.readers
    finally:
        hub.close()
        reading.close()
        writing.close()
