"""More callers than pooled connections (the `test_load` flake: `Too many connections` from redis-py's
default pool). A caller finding every connection busy waits for one, up to the client's bound
(`pool_timeout`), and past it gets `BrokerUnavailable` naming the pool's limit. The server is held
with `CLIENT PAUSE WRITE`, so a publish keeps its connection for as long as the test wants."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from task_client import BrokerUnavailable, TaskClient
from task_client._canvas import CanvasPublisher
from task_client._pools import AsyncBoundedPool, BoundedPool, PoolExhausted
from task_client._settings import ClientSettings
from task_contracts import ConnectionUrls, redact_url
from task_server.testing import RedisProcess, WorkerProcess

pytestmark = pytest.mark.e2e

PAUSE_MS = 60_000  # longer than any test here; every test unpauses when done


@pytest.fixture
def paused(private_redis: RedisProcess) -> Iterator[redis.Redis]:
    """The private Redis with writes paused (reads and the test's own commands still answered)."""
    store = redis.Redis.from_url(private_redis.url)
    store.client_pause(PAUSE_MS, all=False)
    try:
        yield store
    finally:
        store.client_unpause()
        store.close()


def wait_until(condition: Callable[[], bool], bound: float = 30.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def run_callers(count: int, call: Callable[[int], object]) -> tuple[list[threading.Thread], dict[int, object]]:
    """`count` threads, released together, each making one call; outcomes by thread (value or error)."""
    outcomes: dict[int, object] = {}
    start = threading.Barrier(count)

    def caller(n: int) -> None:
        start.wait(timeout=30)
        try:
            outcomes[n] = call(n)
        except Exception as error:  # recorded and asserted on below
            outcomes[n] = error

    threads = [threading.Thread(target=caller, args=(n,), name=f"pool-caller-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def publishes_in_progress(store: redis.Redis) -> int:
    return sum(1 for client in store.client_list() if client["cmd"] == "lpush")


def test_callers_beyond_the_pool_wait_for_a_connection(private_redis: RedisProcess, paused: redis.Redis) -> None:
    """Eight threads, one connection: seven wait while the first publish is held, then all succeed.
    On the old main the seven failed at once with `Too many connections`."""
    with TaskClient(private_redis.url, private_redis.url, max_connections=1, socket_timeout=10) as client:
        threads, outcomes = run_callers(8, lambda n: client.add.submit(n, 1).id)
        wait_until(lambda: publishes_in_progress(paused) == 1)  # one holds the connection, paused
        # Give the others time to reach the pool (old main: to fail there), bounded, then let writes go.
        deadline = time.monotonic() + 1.0
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert publishes_in_progress(paused) == 1  # never more than the pool's one connection
        paused.client_unpause()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert [type(outcome) for outcome in outcomes.values()] == [str] * 8, outcomes
    assert len(set(outcomes.values())) == 8  # eight calls published, each with its own id


def test_a_pool_busy_past_the_bound_is_broker_unavailable_naming_the_limit(
    private_redis: RedisProcess, paused: redis.Redis
) -> None:
    """Six threads, one connection, writes paused for good: each holder keeps the connection for
    `socket_timeout` (1 s) and a waiter gives up after `pool_timeout` (1.2 s), so at most two are
    served; the rest get `BrokerUnavailable` naming `max_connections`, not a raw redis-py error."""
    with TaskClient(
        private_redis.url, private_redis.url, max_connections=1, connect_timeout=0.2, socket_timeout=1.0
    ) as client:
        assert client.settings.pool_timeout == pytest.approx(1.2)
        threads, outcomes = run_callers(6, lambda n: client.add.submit(n, 1))
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert all(isinstance(outcome, BrokerUnavailable) for outcome in outcomes.values()), outcomes
    exhausted = [str(error) for error in outcomes.values() if "max_connections=1" in str(error)]
    assert exhausted, [str(error) for error in outcomes.values()]
    assert all("all 1 connections of the client's pool stayed busy for 1.2 s" in text for text in exhausted)
    assert all(redact_url(private_redis.url) in text for text in exhausted)  # and the broker


def test_the_pools_raise_pool_exhausted_only_for_a_full_pool(private_redis: RedisProcess) -> None:
    """The two pool classes themselves: a full pool, after its wait, raises `PoolExhausted`; a
    released connection is handed out again; a refused connection stays redis-py's own error."""
    pool = BoundedPool.from_url(private_redis.url, max_connections=1, timeout=0.1)
    held = pool.get_connection()
    with pytest.raises(PoolExhausted, match=r"max_connections=1"):
        pool.get_connection()
    pool.release(held)
    pool.release(pool.get_connection())
    pool.disconnect()

    async def asynchronous() -> None:
        pool = AsyncBoundedPool.from_url(private_redis.url, max_connections=1, timeout=0.1)
        held = await pool.get_connection()
        with pytest.raises(PoolExhausted, match=r"max_connections=1"):
            await pool.get_connection()
        await pool.release(held)
        await pool.release(await pool.get_connection())
        await pool.disconnect()

    asyncio.run(asynchronous())

    private_redis.stop()
    refused = BoundedPool.from_url(private_redis.url, max_connections=1, timeout=0.1, socket_connect_timeout=1)
    with pytest.raises(redis.exceptions.ConnectionError) as caught:
        refused.get_connection()
    assert not isinstance(caught.value, PoolExhausted)


def test_one_connection_still_serves_calls_and_results(private_redis: RedisProcess, tmp_path: Path) -> None:
    """`max_connections=1` leaves the result listener a connection besides its subscription."""
    with WorkerProcess(
        private_redis.url, result_backend=private_redis.url, concurrency=1, logdir=str(tmp_path)
    ) as worker:
        worker.start()
        with TaskClient(private_redis.url, private_redis.url, max_connections=1) as client:
            handles = [client.add.submit(n, 1) for n in range(3)]
            assert [handle.result(timeout=60) for handle in handles] == [1, 2, 3]
            assert client.add.handle(handles[0].id).result(timeout=60) == 1  # a re-attached handle reads


@pytest.mark.parametrize(
    "backend", ["redis://127.0.0.1:1/0", "sentinel://127.0.0.1:1;sentinel://127.0.0.1:2/0?master_name=main"]
)
def test_the_workflow_backend_pool_waits_too(backend: str) -> None:
    """Celery's result backend of the workflow publisher (chord sizes) gets the same bounded pool."""
    settings = ClientSettings(urls=ConnectionUrls("redis://127.0.0.1:1/0", backend), max_connections=3)
    canvas = CanvasPublisher(settings)
    try:
        pool = canvas.app.backend.client.connection_pool  # built without connecting
        assert isinstance(pool, BoundedPool)
        assert (pool.max_connections, pool.timeout) == (3, settings.pool_timeout)
    finally:
        canvas.close()


# -- how BoundedPool hands connections out (its own steps, not redis-py 8's: see `_pools`) ---------


def test_a_connection_holding_an_unread_reply_is_not_handed_to_the_next_user(private_redis: RedisProcess) -> None:
    """A connection given back with a reply still unread is reconnected before it is handed out, so
    the next user never reads another's reply. On the old main, with redis-py 8 (RESP3, its maintenance
    notifications "auto"), the next ECHO read b"stale"."""
    pool = BoundedPool.from_url(private_redis.url, max_connections=1, timeout=1)
    try:
        held = pool.get_connection()
        held.send_command("ECHO", "stale")
        wait_until(held.can_read)  # the reply has come, unread
        pool.release(held)
        again = pool.get_connection()
        again.send_command("ECHO", "fresh")
        assert again.read_response() == b"fresh"
        pool.release(again)
    finally:
        pool.disconnect()


def test_a_connection_the_server_closed_is_reconnected_before_it_is_handed_out(private_redis: RedisProcess) -> None:
    pool = BoundedPool.from_url(private_redis.url, max_connections=1, timeout=1)
    admin = redis.Redis.from_url(private_redis.url)
    try:
        held = pool.get_connection()
        held.send_command("CLIENT", "SETNAME", "pooled")
        assert held.read_response() == b"OK"
        pool.release(held)
        assert admin.client_kill_filter(skipme=True, _type="normal") >= 1
        wait_until(lambda: not any(client["name"] == "pooled" for client in admin.client_list()))
        again = pool.get_connection()
        again.send_command("PING")
        assert again.read_response() in (b"PONG", "PONG")
        pool.release(again)
    finally:
        admin.close()
        pool.disconnect()


def test_the_pool_never_opens_more_than_max_connections_across_threads(private_redis: RedisProcess) -> None:
    """Eight threads take turns on two connections: each reads its own replies, and the server
    never sees more than the pool's two connections."""
    pool = BoundedPool.from_url(private_redis.url, max_connections=2, timeout=30, client_name="pooled")
    admin = redis.Redis.from_url(private_redis.url)
    seen: list[int] = []

    def turns(n: int) -> int:
        for turn in range(50):
            connection = pool.get_connection()
            try:
                connection.send_command("ECHO", f"{n}-{turn}")
                assert connection.read_response() == f"{n}-{turn}".encode()
                if turn % 10 == 0:
                    seen.append(sum(1 for client in admin.client_list() if client["name"] == "pooled"))
            finally:
                pool.release(connection)
        return n

    try:
        threads, outcomes = run_callers(8, turns)
        for thread in threads:
            thread.join(timeout=60)
        assert outcomes == {n: n for n in range(8)}, outcomes
        assert seen and max(seen) <= 2, seen
    finally:
        admin.close()
        pool.disconnect()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork: POSIX only")
def test_a_pool_used_after_a_fork_gives_the_child_connections_of_its_own(private_redis: RedisProcess) -> None:
    """The child of a fork never writes on its parent's socket (redis-py resets the pool there)."""
    pool = BoundedPool.from_url(private_redis.url, max_connections=1, timeout=1)
    try:
        parent = pool.get_connection()
        parent.send_command("CLIENT", "ID")
        parent_id = parent.read_response()
        pool.release(parent)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through the pipe
            code = 1
            try:
                connection = pool.get_connection()
                connection.send_command("CLIENT", "ID")
                os.write(write_end, str(connection.read_response()).encode())
                pool.release(connection)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as report:
            child_id = report.read()
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_id and int(child_id) != parent_id
        again = pool.get_connection()  # the parent's connection still serves the parent
        again.send_command("CLIENT", "ID")
        assert again.read_response() == parent_id
        pool.release(again)
    finally:
        pool.disconnect()
