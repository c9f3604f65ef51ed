"""issue 19 item 5: Redis at `maxmemory` with `noeviction` refuses every write that needs memory.

A call is then never a `TaskTimeout` nor a `TaskFailed` (which would blame the task): publishing
raises `BrokerUnavailable`; a call already queued stays queued (a worker takes a message only
together with its unacked record, which a full Redis refuses) and is served once Redis has room,
even if the worker that would have taken it is killed meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from task_client import BrokerUnavailable, TaskClient
from task_contracts.wire import TAKING_KEY
from task_server._recorded_pop import POP_AND_RECORD, PROBE, RECORD_OR_PUT_BACK
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


def stop_taking(worker: WorkerProcess, connection: redis.Redis) -> None:
    """Stop the worker's main process (SIGSTOP), and wait until its pending BRPOP has timed out, so
    that a message published now stays queued until the worker, continued, takes it."""
    os.kill(worker.pid, signal.SIGSTOP)
    blocked = lambda: any("b" in client["flags"] for client in connection.client_list())  # noqa: E731
    wait_until(lambda: not blocked(), 10, "the stopped worker's BRPOP to time out")


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
def test_calls_published_before_redis_filled_up_stay_queued_until_it_has_room(
    pool: str, full_redis: RedisProcess, tmp_path: Path
) -> None:
    """The worker's main process is stopped (SIGSTOP) while the calls are published and Redis is
    filled, so it resumes facing a full Redis. It records no message, so it takes none: each stays
    queued, and once Redis has room the calls are served and the callers get their values, not
    `BrokerUnavailable` nor `TaskTimeout`."""
    with (
        redis.Redis.from_url(full_redis.url) as connection,
        WorkerProcess(full_redis.url, concurrency=2, pool=pool, logdir=str(tmp_path), **serving()) as worker,
        TaskClient(full_redis.url) as client,
        concurrent.futures.ThreadPoolExecutor(1) as waiter,
    ):
        worker.start()
        assert client.add(1, 1) == 2
        stop_taking(worker, connection)
        try:
            single = client.add.with_options(timeout=90).submit(4, 7)
            mapped = waiter.submit(client.add.map, [(i, i) for i in range(20)], timeout=90, chunk_size=5)
            wait_until(lambda: connection.llen("math") == 5, 10, "the calls' 5 messages (4 chunks) on the queue")
            written = fill(connection)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        try:
            wait_until(lambda: "Redis is full (maxmemory)" in worker.log(), 30, "the worker to log that Redis is full")
            wait_until(lambda: connection.llen("math") == 5, 30, "every message back on its queue")
            assert single.status == "PENDING"
            assert worker.alive()
        finally:
            drain(connection, written)
        assert single.result() == 11
        assert mapped.result(timeout=90) == [2 * i for i in range(20)]
        wait_until(lambda: "Redis has room again" in worker.log(), 30, "the worker to log that it takes messages again")
        assert worker.alive()


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_message_taken_from_a_full_redis_survives_its_worker_being_killed(
    pool: str, full_redis: RedisProcess, tmp_path: Path
) -> None:
    """A worker facing a full Redis is killed (SIGKILL) before Redis has room again: the call it
    would have taken is served by the next worker, and the caller gets its value.

    Before, the worker popped the message (BRPOP runs on a full Redis), its unacked record was
    refused, and it ran the call: killed, the call was lost (its caller got `BrokerUnavailable`
    from a refused progress report, or waited for its timeout), with nothing left to redeliver."""
    with (
        redis.Redis.from_url(full_redis.url) as connection,
        WorkerProcess(full_redis.url, concurrency=2, pool=pool, logdir=str(tmp_path), **serving()) as first,
        TaskClient(full_redis.url) as client,
    ):
        first.start()
        assert client.add(1, 1) == 2
        stop_taking(first, connection)
        try:
            handle = client.count_to.with_options(timeout=60).submit(20, 0.25)  # 5 s
            written = fill(connection)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        try:
            # The new worker logs that Redis is full; the old one took the call and started it.
            wait_until(
                lambda: "Redis is full (maxmemory)" in first.log() or handle.id in first.log(),
                30,
                "the worker to take the call or to log that Redis is full",
            )
            os.killpg(first.pid, signal.SIGKILL)
            assert first.process is not None
            first.process.wait(timeout=10)
        finally:
            drain(connection, written)
        with WorkerProcess(full_redis.url, concurrency=2, pool=pool, logdir=str(tmp_path), **serving()) as second:
            second.start()
            assert handle.result() == 20


def test_the_pop_scripts_take_nothing_from_a_full_redis_and_pop_with_the_record_otherwise(
    full_redis: RedisProcess,
) -> None:
    """The worker's two ways of taking messages (`_recorded_pop`), run against a real full Redis:
    the batch pop pops nothing, and a BRPOP's item whose record is refused goes back to the tail of
    its list (the next one taken); with room, each item is popped together with its record."""
    envelope = '{"body": "", "headers": {"id": "%s"}, "properties": {"delivery_tag": "%s", "delivery_info": {"exchange": "", "routing_key": "math"}}}'  # noqa: E501
    items = [envelope % (f"call-{index}", f"tag-{index}") for index in range(3)]
    with redis.Redis.from_url(full_redis.url) as connection:
        connection.lpush("math", *items)  # call-0 is the tail: the next one taken
        written = fill(connection)
        try:
            assert connection.eval(POP_AND_RECORD, 3, "unacked_index", "unacked", "math", 16, 1.0, "w.1:") == b"FULL"
            taken = connection.rpop("math")  # as BRPOP does on a full Redis
            assert taken == items[0].encode()
            keys = ("unacked_index", "unacked", "math", TAKING_KEY)
            assert connection.eval(RECORD_OR_PUT_BACK, 4, *keys, 1.0, "tag-0", "[]", taken) == b"FULL"
            assert connection.lrange("math", 0, -1) == [item.encode() for item in reversed(items)]
            assert connection.hlen("unacked") == connection.zcard("unacked_index") == 0
            assert connection.eval(PROBE, 1, TAKING_KEY, "brpop-1", 1.0) == b"FULL"
        finally:
            drain(connection, written)
        assert connection.eval(PROBE, 1, TAKING_KEY, "brpop-2", 1.0) == 0
        popped = connection.eval(POP_AND_RECORD, 3, "unacked_index", "unacked", "math", 2, 1.0, "w.2:")
        assert popped == [b"math", items[0].encode(), 1, b"math", items[1].encode(), 1]
        # Filed under the worker's tags (`_batch_pop`), each envelope as the producer sent it.
        assert json.loads(connection.hget("unacked", "w.2:1")) == [json.loads(items[0]), "", "math"]
        assert connection.zscore("unacked_index", "w.2:2") == 1.0
        taken = connection.rpop("math")
        record = json.dumps([json.loads(taken), "", "math"])
        assert connection.eval(RECORD_OR_PUT_BACK, 4, *keys, 2.0, "tag-2", record, taken) == 1
        assert connection.llen("math") == 0
        assert connection.hlen("unacked") == connection.zcard("unacked_index") == 3
