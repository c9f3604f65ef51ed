"""`_internals.replies.read_reply` reads what redis-py's `read_response` reads, and fails as it fails."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hiredis import pack_command

from task_server._internals.replies import read_reply

_KEY = f"test-replies-{uuid.uuid4().hex}"
COMMANDS: list[tuple[Any, ...]] = [
    ("SET", f"{_KEY}:k", "v"),  # status
    ("GET", f"{_KEY}:k"),  # bulk
    ("GET", f"{_KEY}:missing"),  # nil
    ("INCR", f"{_KEY}:n"),  # integer
    ("RPUSH", f"{_KEY}:l", "a", "b"),
    ("LRANGE", f"{_KEY}:l", 0, -1),  # array
    ("BRPOP", f"{_KEY}:l", f"{_KEY}:other", 1),  # BRPOP's two-item array
    ("EVAL", "return {'start', 1}", 0),  # a script's array, as the admission's
    ("EVAL", "return redis.status_reply('FULL')", 0),  # a script's status
    ("EVALSHA", "0" * 40, 0),  # NOSCRIPT: a ResponseError subclass
    ("INCR", f"{_KEY}:k"),  # an error reply
    ("HGETALL", f"{_KEY}:nothing"),  # an empty map (RESP3) or array
    ("DEL", f"{_KEY}:k", f"{_KEY}:n", f"{_KEY}:l", f"{_KEY}:big"),
]


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def connection(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url, protocol=request.param)
    connection = client.connection_pool.get_connection()
    yield connection
    client.connection_pool.release(connection)
    client.close()


def _outcomes(connection: Any, read: Any) -> list[Any]:
    connection.send_packed_command([b"".join(pack_command(command) for command in COMMANDS)])
    outcomes: list[Any] = []
    for _ in COMMANDS:
        try:
            outcomes.append(read())
        except redis.exceptions.ResponseError as error:
            outcomes.append((type(error), str(error)))
    return outcomes


def test_each_reply_is_read_as_redis_py_reads_it(connection: Any) -> None:
    expected = _outcomes(connection, connection.read_response)
    assert expected[-4][0] is redis.exceptions.NoScriptError  # the comparison covers an error subclass
    assert _outcomes(connection, lambda: read_reply(connection)) == expected


def test_a_reply_split_across_reads_is_read_whole(connection: Any) -> None:
    connection.send_command("SET", f"{_KEY}:big", "x" * 200_000)
    connection.read_response()
    connection.send_command("GETDEL", f"{_KEY}:big")
    assert read_reply(connection) == b"x" * 200_000


def test_a_closed_connection_fails_as_in_redis_py_and_is_dropped(connection: Any, redis_url: str) -> None:
    connection.send_command("CLIENT", "ID")
    own_id = read_reply(connection)
    killer = redis.Redis.from_url(redis_url)
    killer.client_kill_filter(_id=own_id)
    killer.close()
    with pytest.raises(redis.exceptions.ConnectionError):
        read_reply(connection)
    assert connection._sock is None  # dropped: the next command reconnects
    connection.send_command("PING")
    assert read_reply(connection) in (b"PONG", "PONG", True)


def test_a_reply_redis_py_took_to_see_whether_one_is_in_comes_first(connection: Any) -> None:
    # redis-py before 7 keeps the reply its `can_read` parsed (the batch pop's read behind asks it).
    connection.send_packed_command([pack_command(("ECHO", "first")) + pack_command(("ECHO", "second"))])
    assert connection.can_read(timeout=5)  # reads the socket
    assert connection.can_read(timeout=0)  # finds a reply: redis-py 6 parses and keeps it
    assert [read_reply(connection), read_reply(connection)] == [b"first", b"second"]
