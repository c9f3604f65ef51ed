"""issue 19 item 5: Redis at `maxmemory` with `noeviction` refuses every write that needs memory.

A call is then never a `TaskTimeout` nor a `TaskFailed` (which would blame the task): publishing
raises `BrokerUnavailable`, and a call already taken by a worker gets `BrokerUnavailable` as soon
as its record is refused (the worker PUBLISHes a notice, which needs no memory). Nothing is lost
silently: the caller learns it, and the worker logs each call whose record was refused.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from task_client import BrokerUnavailable, TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import serving

pytestmark = pytest.mark.e2e

MAXMEMORY = ["--maxmemory", "24mb", "--maxmemory-policy", "noeviction"]


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    with RedisProcess(workdir=str(tmp_path), extra_args=MAXMEMORY) as process:
        process.start()
        yield process


def fill(connection: redis.Redis) -> int:
    """Put Redis 1 MB over its limit: writes that need memory are refused, and the little memory
    that popping a message frees does not make room. Return the limit to restore."""
    # Small values: a large one would leave a large query buffer, freed later, making room.
    for batch in range(4):
        with connection.pipeline(transaction=False) as pipe:
            for index in range(100):
                pipe.set(f"padding-{batch}-{index}", b"x" * 10_000)
            pipe.execute()
    used = int(connection.info("memory")["used_memory"])
    connection.config_set("maxmemory", used - 1_000_000)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        connection.set("probe", "x")
    return used


def drain(connection: redis.Redis, used: int) -> None:
    connection.delete(*(f"padding-{batch}-{index}" for batch in range(4) for index in range(100)))
    connection.config_set("maxmemory", "24mb")


def test_publishing_to_a_full_redis_raises_broker_unavailable(full_redis: RedisProcess) -> None:
    with redis.Redis.from_url(full_redis.url) as connection, TaskClient(full_redis.url) as client:
        written = fill(connection)
        try:
            for call in (lambda: client.add.submit(1, 2), lambda: client.add.map([(1, 2)] * 20, timeout=5)):
                with pytest.raises(BrokerUnavailable, match="maxmemory"):
                    call()
        finally:
            drain(connection, written)
        assert client.add.submit(1, 2).id  # room again: publishing works


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_calls_taken_by_a_worker_when_redis_is_full_end_in_broker_unavailable_and_are_not_lost(
    pool: str, full_redis: RedisProcess, tmp_path: Path
) -> None:
    """The worker's main process is stopped (SIGSTOP) while the calls are published and Redis is
    filled, so it takes them from a full Redis: its unacked record, start count and result are all
    refused. `prefork`: `count_to` in a pool process; `threads`: `add` and a `map` of it."""
    with (
        redis.Redis.from_url(full_redis.url) as connection,
        WorkerProcess(full_redis.url, concurrency=2, pool="prefork", logdir=str(tmp_path), **serving()) as worker,
        TaskClient(full_redis.url) as client,
        concurrent.futures.ThreadPoolExecutor(1) as waiter,
    ):
        worker.start()
        assert client.add(1, 1) == 2
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            if pool == "prefork":
                handles = [client.count_to.with_options(timeout=30).submit(3, 0.01)]
                mapped = None
            else:
                handles = [client.add.with_options(timeout=30).submit(4, 7)]
                mapped = waiter.submit(
                    client.add.map, [(i, i) for i in range(20)], timeout=30, chunk_size=5, return_exceptions=True
                )
                # 5 messages; the stopped worker's pending BRPOP may have taken one.
                wait_until(lambda: connection.llen("math") >= 4, 10, "the map's messages on the queue")
            written = fill(connection)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        try:
            for handle in handles:
                with pytest.raises(BrokerUnavailable, match="maxmemory"):
                    handle.result()
            if mapped is not None:
                outcomes = mapped.result(timeout=60)
                # Popping messages frees a little memory, so some records may get stored: each outcome
                # is its value or BrokerUnavailable, never a timeout or a failure of the task.
                assert all(
                    outcome == 2 * i or isinstance(outcome, BrokerUnavailable) for i, outcome in enumerate(outcomes)
                ), outcomes
            assert worker.alive()
        finally:
            drain(connection, written)
        # Not lost silently: stored once Redis had room again (a call that was still running), or
        # its refused record logged by the worker with its id.
        for handle in handles:
            line = f"task {handle.id} finished but its result could not be stored"
            wait_until(lambda: line in worker.log() or handle.status == "SUCCESS", 30, "a record or a log line")  # noqa: B023
        assert client.add.with_options(timeout=10)(4, 7) == 11
        assert worker.alive()
