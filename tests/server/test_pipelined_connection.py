"""The pipelined connection behind early admissions and the unacked record (`task_server._pipelined`), on a real Redis:
commands written by one thread, replies read in order by whichever threads ask for them."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import redis
from celery.app.task import Context

from task_contracts.math import add
from task_server._admission import _admit_now, admission_command
from task_server._pipelined import PipelinedConnection, holding_writes, pipeline_for
from task_server._preadmission import ASKED_KEY, claim_admission, remember_asked
from task_server.testing import RedisProcess, wait_until

pytestmark = pytest.mark.e2e


def test_each_reply_reaches_the_command_that_asked_for_it_whoever_reads_it(private_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(private_redis.url)
    pipelined = PipelinedConnection(client.connection_pool)
    replies = [pipelined.send("INCR", "counter") for _ in range(50)]
    values: dict[int, int] = {}

    def read(indexes: range) -> None:
        for index in indexes:
            values[index] = replies[index]()

    # Later replies first, from other threads: each still gets its own command's value.
    readers = [threading.Thread(target=read, args=(range(start, start + 10),)) for start in (40, 20, 0, 30, 10)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=10)
    assert values == {index: index + 1 for index in range(50)}
    client.close()


def test_a_refused_command_fails_alone(private_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(private_redis.url)
    pipelined = PipelinedConnection(client.connection_pool)
    client.set("text", "not a number")
    refused, accepted = pipelined.send("INCR", "text"), pipelined.send("INCR", "counter")
    with pytest.raises(redis.exceptions.ResponseError):
        refused()
    assert accepted() == 1
    client.close()


def test_a_lost_connection_fails_every_pending_reply_and_the_next_command_reconnects(
    private_redis: RedisProcess,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    pipelined = PipelinedConnection(client.connection_pool)
    assert pipelined.send("CLIENT", "SETNAME", "pipelined")() == b"OK"
    pending = pipelined.send("BLPOP", "never-filled", 5)  # waits on the server...
    client.client_kill_filter(_type="normal", skipme=True)  # ...until its connection is killed
    with pytest.raises((redis.exceptions.ConnectionError, OSError)):
        pending()
    assert pipelined.send("PING")() == b"PONG"
    client.close()


def test_a_verdict_is_claimed_once_and_only_by_the_delivery_it_was_asked_for(private_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(private_redis.url)
    reply = PipelinedConnection(client.connection_pool).send("PING")
    headers = {"id": "call-1", "retries": 0}
    delivered = SimpleNamespace(request_dict=dict(headers))  # Celery's request of one delivery
    remember_asked(delivered, reply)
    assert claim_admission(Context(dict(headers))) is None  # another message with the same id and attempt
    assert claim_admission(Context({**headers, ASKED_KEY: "start"})) is None  # a header of that name
    own = Context(delivered.request_dict)  # the task request its thread runs with
    assert claim_admission(own) is reply
    assert reply() == b"PONG"
    assert claim_admission(own) is None  # once
    client.close()


def test_a_connection_dropped_by_another_thread_while_replies_are_unread_fails_them_as_lost(
    private_redis: RedisProcess,
) -> None:
    # As when Redis crashes: one thread's failed send drops the connection while another reads it.
    client = redis.Redis.from_url(private_redis.url)
    pipelined = PipelinedConnection(client.connection_pool)
    pending = pipelined.send("BLPOP", "never-filled", 5)
    pending.connection.disconnect()
    # "...closed while reading" (redis-py's Python parser) or "Connection closed by server." (hiredis's).
    with pytest.raises(redis.exceptions.ConnectionError, match="closed"):
        pending()
    assert pipelined.send("PING")() == b"PONG"
    client.close()


def test_an_admission_asked_from_a_thread_is_answered_once_even_after_redis_forgot_the_script(
    private_redis: RedisProcess,
) -> None:
    """A call that waited for a thread asks for its admission itself, on the pipelined connection by
    the script's SHA; a NOSCRIPT refusal ran nothing, so asking again with the script counts one start."""
    client = redis.Redis.from_url(private_redis.url)
    keys, arguments = admission_command(add, "asked-from-a-thread", 0, 10.0, None)
    assert _admit_now(client, keys, arguments) == [b"start", 1]
    client.script_flush()
    keys, arguments = admission_command(add, "asked-after-a-flush", 0, 10.0, None)
    assert _admit_now(client, keys, arguments) == [b"start", 1]
    assert client.get(keys[1]) == b"1"  # its start counter: one start
    client.close()


def test_commands_given_while_holding_are_written_together_and_before_a_reply_is_read(
    private_redis: RedisProcess,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    pipelined = pipeline_for(client.connection_pool)
    pipelined.send("SET", "counter", 0)()  # connected before holding
    with holding_writes():
        first, second = pipelined.send("INCR", "counter"), pipelined.send("INCR", "counter")
        assert client.get("counter") == b"0"  # held: nothing written yet
        assert second() == 2  # a reply wanted: everything held is written first
        third = pipelined.send("INCR", "counter")
        assert client.get("counter") == b"2"
    # Written as the hold ends, with no reply asked for. Redis may serve this test's own connection
    # first when both have bytes waiting (a loaded machine: seen once), so wait (bounded) to see it.
    wait_until(lambda: client.get("counter") == b"3", 5, "the command held to the end of the hold to be written")
    assert (first(), third()) == (1, 3)
    pipelined.send("INCR", "counter")()  # no longer holding
    assert client.get("counter") == b"4"
    pipelined.close()
    client.close()


def test_a_command_held_for_a_connection_that_was_lost_is_never_written_on_the_next_one(
    private_redis: RedisProcess,
) -> None:
    """A command held for one connection (its reply waited for there) must not be written on the
    connection that replaces it: its reply would be read as the reply of the next command."""
    client = redis.Redis.from_url(private_redis.url)
    pipelined = PipelinedConnection(client.connection_pool)
    blocked = pipelined.send("BLPOP", "never-filled", 5)  # written now, answered only when killed
    failures: list[BaseException] = []

    def read_blocked() -> None:
        try:
            blocked()
        except BaseException as error:  # the lost connection, expected
            failures.append(error)

    reader = threading.Thread(target=read_blocked)
    reader.start()
    deadline = time.monotonic() + 5
    while not pipelined._read_lock.locked() and time.monotonic() < deadline:  # the reader is in its read
        time.sleep(0.01)
    pipelined.hold()  # as the event loop does around a burst of deliveries
    lost = pipelined.send("ECHO", "lost")  # held, for the connection the reader is reading
    client.client_kill_filter(_type="normal", skipme=True)
    reader.join(timeout=10)
    assert failures and not reader.is_alive()
    with pytest.raises(redis.exceptions.ConnectionError):
        lost()  # failed with its connection
    fresh = pipelined.send("ECHO", "fresh")  # on a new connection
    pipelined.flush(keep_holding=False)
    assert fresh() == b"fresh"
    pipelined.close()
    client.close()
