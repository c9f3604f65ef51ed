"""What a finished call leaves in Redis: its record for the contract's lifetime, then nothing.

The start counter goes as soon as the call finishes; the record expires after its lifetime
(`--result-ttl` shortens it here so that it passes within the test). A message delivered again
after its call finished is acknowledged without running a second time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from task_client import TaskClient
from task_contracts import math
from task_contracts.wire import RESULT_KEY_PREFIX
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..brokers import Broker
from ..catalog import diagnostics, serving
from .raw_messages import envelope, json_body, push

pytestmark = pytest.mark.e2e

LIFETIME = 2  # seconds, the worker's --result-ttl in these tests
CALL_KEYS = (RESULT_KEY_PREFIX + "*", "task-sdk-deliveries-*")


def call_keys(connection: redis.Redis) -> int:
    return sum(1 for pattern in CALL_KEYS for _ in connection.scan_iter(pattern, count=1000))


@pytest.fixture
def short_lived(private_redis: RedisProcess, tmp_path: Path) -> Iterator[tuple[TaskClient, redis.Redis]]:
    """A client of a worker that keeps finished records `LIFETIME` seconds, and a Redis connection."""
    markers = tmp_path / "diagnostics"
    markers.mkdir()
    with WorkerProcess(
        private_redis.url,
        extra_args=["--result-ttl", str(LIFETIME)],
        logdir=str(tmp_path),
        **serving({"TASK_DIAGNOSTICS_DIR": str(markers)}),
    ) as worker:
        worker.start()
        connection = redis.Redis.from_url(private_redis.url)
        with TaskClient(private_redis.url) as client:
            yield client, connection
        connection.close()


def test_a_default_worker_keeps_a_record_for_its_contracts_lifetime(redis_url: str, client: TaskClient) -> None:
    handle = client.add.submit(2, 2)
    assert handle.result(timeout=10) == 4
    connection = redis.Redis.from_url(redis_url)
    try:
        ttl = connection.ttl(RESULT_KEY_PREFIX + handle.id)
        assert math.add.result_ttl - 60 < ttl <= math.add.result_ttl
        assert not connection.exists("task-sdk-deliveries-" + handle.id)  # gone once finished
        assert not connection.exists("task-sdk-running-" + handle.id)  # so is its running mark
    finally:
        connection.close()


def test_a_finished_call_leaves_nothing_once_its_lifetime_has_passed(
    short_lived: tuple[TaskClient, redis.Redis],
) -> None:
    client, connection = short_lived
    handle = client.add.submit(1, 2)
    assert handle.result(timeout=10) == 3
    assert 0 < connection.pttl(RESULT_KEY_PREFIX + handle.id) <= LIFETIME * 1000
    assert not connection.exists("task-sdk-deliveries-" + handle.id)
    wait_until(lambda: not connection.exists(RESULT_KEY_PREFIX + handle.id), 30, "the record to expire")


@pytest.mark.timeout(600)  # 100,000 calls on a loaded machine
def test_100000_calls_leave_redis_memory_where_it_was_once_their_lifetimes_pass(
    short_lived: tuple[TaskClient, redis.Redis],
) -> None:
    client, connection = short_lived
    assert client.add.map([(0, 0)] * 100) == [0] * 100  # warm-up: connections and buffers exist
    wait_until(lambda: call_keys(connection) == 0, 60, "the warm-up records to expire")
    start = connection.info("memory")["used_memory"]
    expired_before = connection.info("stats")["expired_keys"]
    chunked = [(i, 1) for i in range(95_000)]
    single = [(i, 2) for i in range(5_000)]
    assert client.add.map(chunked, timeout=300) == [i + 1 for i in range(95_000)]
    assert client.add.map(single, chunk_size=1, timeout=300) == [i + 2 for i in range(5_000)]
    wait_until(lambda: call_keys(connection) == 0, 120, "every record to expire")
    # Every record was stored and then expired (380 chunk records and 5,000 single ones), not lost.
    assert connection.info("stats")["expired_keys"] - expired_before >= 95_000 // 250 + 5_000
    growth = connection.info("memory")["used_memory"] - start
    assert growth < 10 * 1024 * 1024, f"used_memory grew by {growth} bytes"


def test_a_message_delivered_again_after_its_call_finished_does_not_run_again(
    short_lived: tuple[TaskClient, redis.Redis], tmp_path: Path
) -> None:
    client, connection = short_lived
    (tmp_path / "diagnostics" / "again.release").touch()
    task_id = "again-0001"
    message = envelope("diagnostics.hold_once", json_body(["again", 1], {}), task_id=task_id, queue="diagnostics")
    connection.lpush("diagnostics", message)
    assert client.task(diagnostics.hold_once).handle(task_id).result(timeout=30) == 1
    connection.lpush("diagnostics", message)  # as kombu restores an unacknowledged message
    wait_until(lambda: connection.llen("diagnostics") == 0, 30, "the second delivery to be taken")
    worker_log = next(tmp_path.glob("worker-*.log"))
    wait_until(lambda: "delivered again after it had finished" in worker_log.read_text(), 30, "the worker to skip it")
    assert (tmp_path / "diagnostics" / "again.starts").read_text().count("\n") == 1
    record = json.loads(connection.get(RESULT_KEY_PREFIX + task_id) or b"{}")
    assert (record["status"], record["result"]) == ("SUCCESS", 1)


def test_a_refused_message_record_lives_as_long_as_its_contracts_records(broker: Broker, worker: WorkerProcess) -> None:
    """issue 19: refusal records lived 24 h, whatever the contract said (now its `result_ttl`)."""
    task_id = push(broker.url, "math.add", b"not json", queue="math")
    with redis.Redis.from_url(broker.result_backend) as connection:
        wait_until(lambda: connection.exists(RESULT_KEY_PREFIX + task_id), 10, "the refusal record")
        ttl = connection.ttl(RESULT_KEY_PREFIX + task_id)
    assert 0 < ttl <= math.add.result_ttl < 86_400
