"""Items the worker's Redis channel popped and could not deliver are kept (`_unrecorded`), never lost:
when the connection fails between a BRPOP's reply and its probe's (`_recorded_pop`), and while a
full Redis refuses to take them back (the channel goes on without raising in the event loop)."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Queue

from task_server import _batch_pop
from task_server import _unrecorded as unrecorded
from task_server._internals.channel import polling
from task_server._transport import GuardedConnection
from task_server.testing import RedisProcess, wait_until

pytestmark = pytest.mark.e2e

QUEUE = "probe-lost"


def consuming(url: str, received: list[Any], polling_interval: float = 60.0) -> GuardedConnection:
    connection = GuardedConnection(url, transport_options={"polling_interval": polling_interval})
    channel = connection.default_channel
    Queue(QUEUE, channel=channel).declare()
    channel.basic_consume(QUEUE, True, received.append, "probe-lost-consumer")
    return connection


def test_an_item_popped_before_the_probe_reply_is_lost_comes_back(
    private_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
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

    # The connection breaks after the BRPOP's reply is read, before the probe's is (its read drops
    # the connection and raises, as a failed read does).
    def break_at_the_probe(connection: Any) -> Any:
        connection.disconnect()
        raise redis.exceptions.ConnectionError("connection lost between the BRPOP's and the probe's replies")

    with monkeypatch.context() as patched:
        patched.setattr(_batch_pop, "read_reply", break_at_the_probe)
        with pytest.raises(redis.exceptions.ConnectionError):
            connection.drain_events(timeout=5)
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


@contextlib.contextmanager
def full(server: redis.Redis) -> Iterator[None]:
    """Redis over its `maxmemory` (noeviction) inside the block, with room again after it."""
    server.config_set("maxmemory", int(server.info("memory")["used_memory"]) - 100_000)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            server.set("probe", "x")
        yield
    finally:
        server.config_set("maxmemory", 0)


def delivered_again(connection: GuardedConnection, received: list[Any]) -> None:
    """Drain `connection` until the kept item is delivered, then close it."""
    try:
        wait_until(lambda: _drained(connection) or bool(received), 30, "the kept item to be delivered")
    finally:
        connection.close()


def _drained(connection: GuardedConnection) -> bool:
    with contextlib.suppress(socket.timeout):
        connection.drain_events(timeout=0.2)
    return False


def test_a_kept_item_waits_while_redis_is_full_and_the_channel_goes_on(tmp_path: Path) -> None:
    """A kept item (`_unrecorded`) that a full Redis refuses to requeue stays kept; the channel's
    pop raises nothing (an error there would stop the worker) and requeues it once Redis has room."""
    envelope = {
        "body": "",
        "headers": {"id": "kept"},
        "properties": {"delivery_tag": "kept-tag", "delivery_info": {"exchange": "", "routing_key": QUEUE}},
    }
    with RedisProcess(workdir=str(tmp_path), extra_args=["--maxmemory-policy", "noeviction"]) as process:
        process.start()
        server = redis.Redis.from_url(process.url)
        received: list[Any] = []
        connection = consuming(process.url, received, polling_interval=0.2)  # the next pop comes soon
        unrecorded.keep(None, QUEUE, json.dumps(envelope))
        with full(server):
            with contextlib.suppress(socket.timeout):
                connection.drain_events(timeout=0.5)  # the requeue is refused: no error, nothing taken
            assert unrecorded.pending()
            assert server.llen(QUEUE) == 0
        delivered_again(connection, received)
        assert [message.headers["id"] for message in received] == ["kept"]
        assert not unrecorded.pending()


def test_with_a_key_prefix_an_item_a_full_redis_will_not_record_is_kept_not_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With a global key prefix the channel keeps kombu's record, written after the pop: a full Redis
    refuses it; the item is kept (not delivered, no error out of the event loop) and delivered once
    Redis has room. The consumer's Redis user may use the prefix's keys only."""
    with RedisProcess(workdir=str(tmp_path), extra_args=["--maxmemory-policy", "noeviction"]) as process:
        process.start()
        server = redis.Redis.from_url(process.url)
        options = {"polling_interval": 0.2, "global_keyprefix": "pfx:"}
        with GuardedConnection(process.url, transport_options=options) as producing, producing.Producer() as producer:
            producer.publish({"n": 1}, routing_key=QUEUE, declare=[Queue(QUEUE)])
        assert server.llen(f"pfx:{QUEUE}") == 1
        # The consumer's user may use only the prefix's keys: every key the channel names has it.
        server.acl_setuser(
            "prefixed", enabled=True, passwords=["+pw"], keys=["pfx:*"], channels=["*"], commands=["+@all"]
        )
        received: list[Any] = []
        connection = GuardedConnection(
            process.url.replace("redis://", "redis://prefixed:pw@"), transport_options=options
        )
        channel = connection.default_channel
        Queue(QUEUE, channel=channel).declare()
        channel.basic_consume(QUEUE, False, received.append, "prefixed-consumer")  # acked: recorded
        with full(server):
            with contextlib.suppress(socket.timeout):
                connection.drain_events(timeout=0.5)  # pops the item; its record is refused
            assert received == []
            assert unrecorded.pending()
        delivered_again(connection, received)
        assert [message.payload for message in received] == [{"n": 1}]
        assert not unrecorded.pending()
        assert "this worker takes messages again" in caplog.text  # the wait is over, not doubled on the next refusal


def test_the_rest_of_a_batch_kept_at_a_lost_connection_leaves_no_unacked_record(
    private_redis: RedisProcess,
) -> None:
    """A batch pop (`_batch_pop`) records every message it pops; when a delivery of the batch meets
    a lost connection (the unacked ledger's write fails as the consumer writes its admission, say),
    the messages behind it are kept and requeued (`_unrecorded`). Before, they were kept without
    their record's tag: the requeue left their records, so the visibility sweep would push each of
    them a second time (a duplicate delivery)."""
    server = redis.Redis.from_url(private_redis.url)
    with GuardedConnection(private_redis.url) as producing, producing.Producer() as producer:
        for number in range(1, 7):
            producer.publish({"n": number}, routing_key=QUEUE, declare=[Queue(QUEUE)])
    received: list[Any] = []

    def on_message(message: Any) -> None:
        received.append(message.payload)
        if message.payload == {"n": 4}:  # inside the batch pop of 3 to 6
            raise redis.exceptions.ConnectionError("the connection was lost while delivering the batch")

    connection = GuardedConnection(private_redis.url, transport_options={"polling_interval": 60})
    channel = connection.default_channel
    channel.basic_qos(0, 10, False)
    channel.basic_consume(QUEUE, False, on_message, "batch-consumer")  # acked: recorded as unacked
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            for _ in range(4):  # 1 and 2 by a BRPOP each; then, 2 in flight, a batch pop takes 3 to 6
                connection.drain_events(timeout=5)
        assert received == [{"n": n} for n in range(1, 5)]
        assert unrecorded.pending()  # 5 and 6
    finally:
        connection.close()  # requeues what is kept, and the unacked 1 to 4 (kombu's restore)
    try:
        assert not unrecorded.pending()
        assert sorted(json.loads(item)["body"] for item in server.lrange(QUEUE, 0, -1)) == sorted(
            base64.b64encode(json.dumps({"n": n}).encode()).decode() for n in range(1, 7)
        )
        # Each requeued message's record went with its requeue: the sweep will not push it again.
        assert server.hgetall("unacked") == {}
    finally:
        server.close()
