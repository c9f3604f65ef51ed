"""Every error the client's public API raises is a `TaskError`: no kombu or redis-py exception escapes.

The paths here are the ones that used to leak: a command the broker or backend refuses (an ACL
user without the right), a client closed while a call waits, and `workers()` with no broker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import redis

from task_client import AsyncTaskClient, BrokerUnavailable, ClientClosed, TaskClient, TaskError
from task_server.testing import RedisProcess, free_port, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "pw-error-tree-never-shown"


def restricted_url(redis_process: RedisProcess, user: str, *rules: str) -> str:
    """A URL for a new ACL user with every command except `rules` (e.g. "-lpush")."""
    with redis.Redis.from_url(redis_process.url) as admin:
        admin.execute_command("ACL", "SETUSER", user, "on", f">{PASSWORD}", "~*", "&*", "+@all", *rules)
    return redis_process.url.replace("redis://", f"redis://{user}:{PASSWORD}@")


def caught(operation: Callable[[], Any]) -> BaseException:
    try:
        operation()
    except BaseException as error:
        return error
    raise AssertionError(f"{operation} raised nothing")


def assert_clean(error: BaseException, kind: type[TaskError]) -> None:
    """A client error of `kind`, with no library exception chained or shown, and no password."""
    assert isinstance(error, kind), repr(error)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), repr(
        error.__context__
    )
    shown = "".join(traceback.format_exception(error))
    assert "kombu" not in shown and "redis/" not in shown, shown
    assert PASSWORD not in shown


def run_face(face: str, sync: Callable[[TaskClient], Any], aio: Callable[[AsyncTaskClient], Any], url: str) -> Any:
    if face == "sync":
        with TaskClient(url) as client:
            return sync(client)

    async def main() -> Any:
        async with AsyncTaskClient(url) as client:
            return await aio(client)

    return asyncio.run(main())


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_publish_the_broker_refuses_is_broker_unavailable(face: str, private_redis: RedisProcess) -> None:
    url = restricted_url(private_redis, "no-lpush", "-lpush")
    error = caught(lambda: run_face(face, lambda c: c.add.submit(1, 2), lambda c: c.add.submit(1, 2), url))
    assert_clean(error, BrokerUnavailable)
    assert "NOPERM" in str(error) or "no permissions" in str(error), str(error)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_batch_the_broker_refuses_is_broker_unavailable(face: str, private_redis: RedisProcess) -> None:
    url = restricted_url(private_redis, "no-lpush", "-lpush")
    batch = [(1, 2), (3, 4)]
    error = caught(lambda: run_face(face, lambda c: c.add.map(batch), lambda c: c.add.map(batch), url))
    assert_clean(error, BrokerUnavailable)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_read_the_backend_refuses_is_broker_unavailable(face: str, private_redis: RedisProcess) -> None:
    url = restricted_url(private_redis, "no-get", "-get", "-mget")
    error = caught(
        lambda: run_face(
            face, lambda c: c.add.handle("some-id").status, lambda c: c.add.handle("some-id").status(), url
        )
    )
    assert_clean(error, BrokerUnavailable)
    assert str(error).startswith("result backend ")


@pytest.mark.parametrize("face", ["sync", "async"])
def test_workers_without_a_broker_is_broker_unavailable(face: str) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    error = caught(lambda: run_face(face, lambda c: c.workers(timeout=0.5), lambda c: c.workers(timeout=0.5), url))
    assert_clean(error, BrokerUnavailable)


def test_closing_while_a_sync_call_waits_gives_client_closed(private_redis: RedisProcess) -> None:
    client = TaskClient(private_redis.url)
    handle = client.add.submit(1, 2)  # no worker: it stays pending
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(handle.result, 30)
        wait_until(lambda: client._runtime.watcher.is_watching(handle.id), 10, "the call to wait")
        client.close()
        error = waiting.exception(timeout=10)
    assert isinstance(error, ClientClosed), repr(error)
    assert_clean(caught(lambda: client.add(1, 2)), ClientClosed)


def test_closing_while_an_async_call_waits_gives_client_closed(private_redis: RedisProcess) -> None:
    async def main() -> tuple[BaseException | None, BaseException]:
        client = AsyncTaskClient(private_redis.url)
        handle = await client.add.submit(1, 2)
        waiting = asyncio.ensure_future(handle.result(timeout=30))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not client._runtime.watcher.is_watching(handle.id):
            assert loop.time() < deadline, "the call never started waiting"
            await asyncio.sleep(0.01)
        await client.aclose()
        done, _ = await asyncio.wait((waiting,), timeout=10)
        assert done, "the waiting call did not end when the client closed"
        try:
            await client.add(1, 2)
        except BaseException as after:
            return waiting.exception(), after
        raise AssertionError("a closed client published")

    during, after = asyncio.run(main())
    assert isinstance(during, ClientClosed), repr(during)
    assert_clean(after, ClientClosed)
