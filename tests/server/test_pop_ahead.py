"""A call run on the event loop has its channel's next pop written right after its record
(`_batch_pop.pop_ahead`); that pop becomes the channel's pending pop once the delivery's read is
over, and nothing else is written in its place (a real Redis and the worker's transport)."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest
import redis
from kombu import Queue

from task_server import _batch_pop
from task_server._internals.channel import polling, read_popped
from task_server._transport import GuardedConnection
from task_server.testing import RedisProcess, wait_until

pytestmark = pytest.mark.e2e

QUEUE = "pop-ahead"


def consuming(url: str, on_message: Any) -> tuple[GuardedConnection, Any]:
    connection = GuardedConnection(url, transport_options={"polling_interval": 30})
    channel = connection.default_channel
    Queue(QUEUE, channel=channel).declare()
    channel.basic_consume(QUEUE, True, on_message, "pop-ahead-consumer")
    return connection, channel


def publish(url: str, payload: Any) -> None:
    with GuardedConnection(url) as producing, producing.Producer() as producer:
        producer.publish(payload, routing_key=QUEUE)


def drain(connection: GuardedConnection) -> None:
    with contextlib.suppress(socket.timeout):
        connection.drain_events(timeout=2)


def blocked(server: redis.Redis) -> int:
    return int(server.info("clients")["blocked_clients"])


def test_the_pop_written_during_a_delivery_is_the_pending_pop_after_it(private_redis: RedisProcess) -> None:
    server = redis.Redis.from_url(private_redis.url)
    seen: list[Any] = []

    def on_message(message: Any) -> None:
        before = blocked(server)  # the BRPOP that brought this message has returned
        _batch_pop.pop_ahead()
        wait_until(lambda: blocked(server) == 1, 10, "the pop written ahead to block in Redis")
        seen.append((message.payload, before, channel.pop_in_flight()))

    connection, channel = consuming(private_redis.url, on_message)
    try:
        publish(private_redis.url, {"n": 1})
        drain(connection)
        assert seen == [({"n": 1}, 0, True)]
        assert polling(channel) and not channel.pop_in_flight()  # the pending pop now
        assert blocked(server) == 1
        drain(connection)  # nothing waits: the pending pop is not written again
        assert blocked(server) == 1
        publish(private_redis.url, {"n": 2})
        drain(connection)
        assert [payload for payload, _, _ in seen] == [{"n": 1}, {"n": 2}]
    finally:
        connection.close()


def test_a_pop_that_cannot_be_written_ahead_is_written_on_the_next_turn(
    private_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def on_message(message: Any) -> None:
        with monkeypatch.context() as failing:
            failing.setattr(type(channel), "start_pop", _refused)
            _batch_pop.pop_ahead()
        seen.append((message.payload, channel.pop_in_flight()))

    connection, channel = consuming(private_redis.url, on_message)
    try:
        publish(private_redis.url, {"n": 1})
        drain(connection)
        publish(private_redis.url, {"n": 2})
        drain(connection)
        drain(connection)
        assert seen[:2] == [({"n": 1}, False), ({"n": 2}, False)]
    finally:
        connection.close()


def _refused(self: Any, timeout: Any = None) -> None:
    raise redis.exceptions.ConnectionError("refused for the test")


def test_no_pop_is_written_ahead_outside_a_delivery(private_redis: RedisProcess) -> None:
    connection, channel = consuming(private_redis.url, lambda message: None)
    try:
        _batch_pop.pop_ahead()  # nothing is being delivered
        assert not channel.pop_in_flight()
    finally:
        connection.close()


class _Reading:
    """A channel reading a BRPOP reply, as `read_popped` sees one."""

    connection_errors = (redis.exceptions.ConnectionError,)

    def __init__(self, in_flight: bool) -> None:
        self._in_poll = object()
        self._in_flight = in_flight
        self.reauths = 0
        self.client = self

    global_keyprefix = ""

    class connection:
        _parser = None

        @staticmethod
        def read_response() -> Any:
            return [b"q", b"item"]

    def pop_in_flight(self) -> bool:
        return self._in_flight

    def _flush_brpop_reauth(self) -> None:
        self.reauths += 1


@pytest.mark.parametrize("in_flight", [False, True])
def test_no_auth_is_written_behind_a_pop_in_flight(in_flight: bool) -> None:
    channel = _Reading(in_flight)
    read_popped(channel, lambda key, item, behind: True, lambda: None, lambda key, item: None)
    assert channel.reauths == (0 if in_flight else 1)  # kombu writes a pending AUTH at the next idle read
    assert channel._in_poll is None


def test_a_pop_written_ahead_stays_the_pending_pop_when_the_delivery_raises(private_redis: RedisProcess) -> None:
    server = redis.Redis.from_url(private_redis.url)
    seen: list[Any] = []

    def on_message(message: Any) -> None:
        seen.append(message.payload)
        if len(seen) == 1:
            _batch_pop.pop_ahead()
            raise RuntimeError("the worker is stopping")  # as a shutdown raised inside a call

    connection, channel = consuming(private_redis.url, on_message)
    try:
        publish(private_redis.url, {"n": 1})
        with pytest.raises(RuntimeError):
            drain(connection)
        assert polling(channel) and not channel.pop_in_flight()  # known to the channel, not dropped
        wait_until(lambda: blocked(server) == 1, 10, "the pop written ahead to block in Redis")
        publish(private_redis.url, {"n": 2})
        drain(connection)
        assert seen == [{"n": 1}, {"n": 2}]
    finally:
        connection.close()
