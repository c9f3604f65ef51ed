"""Reply channels: a caller names a `task-client-*` channel in `reply_to` and gets every record of
its calls published there, one subscription for all of them (`task_contracts.wire.REPLY_CHANNEL_PREFIX`).

A caller that uses one still gets its answers from a worker that does not publish there (a stock
Celery worker stands in for a worker older than reply channels): after a short wait the client also
subscribes to the task's own channel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from task_client import TaskClient
from task_contracts.wire import REPLY_CHANNEL_PREFIX, RESULT_KEY_PREFIX
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..conftest import REPO_ROOT
from .raw_messages import envelope, json_body, push_add_with_reply_to

pytestmark = pytest.mark.e2e

STOCK_WORKER = (sys.executable, "-m", "celery", "-A", "tests.e2e.stock_worker_app", "worker", "-Q", "math")


def next_message(pubsub: Any, timeout: float = 10.0) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            found.append(message)
        return bool(found)

    wait_until(arrived, timeout, "a message on the subscribed channels")
    return found[0]


def test_the_worker_publishes_each_record_on_the_callers_reply_channel(redis_url: str, worker: WorkerProcess) -> None:
    reply_channel = REPLY_CHANNEL_PREFIX + uuid.uuid4().hex
    connection = redis.Redis.from_url(redis_url)
    pubsub = connection.pubsub()
    pubsub.subscribe(reply_channel)
    try:
        task_ids = [push_add_with_reply_to(redis_url, reply_channel, [i, 1]) for i in range(3)]
        records = {}
        for _ in task_ids:
            message = next_message(pubsub)
            assert message["channel"] == reply_channel.encode()
            record = json.loads(message["data"])
            records[record["task_id"]] = record
        assert {task_id: (records[task_id]["status"], records[task_id]["result"]) for task_id in task_ids} == {
            task_id: ("SUCCESS", i + 1) for i, task_id in enumerate(task_ids)
        }
    finally:
        pubsub.close()
        connection.close()


def test_a_reply_to_that_is_not_a_reply_channel_gets_nothing_published(redis_url: str, worker: WorkerProcess) -> None:
    other = str(uuid.uuid4())  # what Celery puts in reply_to
    connection = redis.Redis.from_url(redis_url)
    pubsub = connection.pubsub()
    task_id = str(uuid.uuid4())
    pubsub.subscribe(other, RESULT_KEY_PREFIX + task_id)
    try:
        message = json.loads(envelope("math.add", json_body([4, 7], {}), task_id=task_id, queue="math"))
        message["properties"]["reply_to"] = other
        connection.lpush("math", json.dumps(message))
        record = next_message(pubsub)
        assert record["channel"] == (RESULT_KEY_PREFIX + task_id).encode()
        assert json.loads(record["data"])["result"] == 11
        # The record is published on both channels in one script, the task's first: had the other
        # been published on, it would come before the answer to this PING.
        pubsub.ping()
        pong = next_message(pubsub)
        assert pong["type"] == "pong", pong
    finally:
        pubsub.close()
        connection.close()


@pytest.fixture
def stock_worker(private_redis: RedisProcess, tmp_path: Path) -> Iterator[Path]:
    """A plain Celery worker serving `math.add` on queue `math` of a Redis of this test's own; its log."""
    log_path = tmp_path / "stock-worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*STOCK_WORKER, "--pool", "solo", "--loglevel", "INFO"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "STOCK_WORKER_URL": private_redis.url, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: " ready." in log_path.read_text() or process.poll() is not None, 60, "the stock worker")
        assert process.poll() is None, log_path.read_text()
        yield log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_a_worker_that_does_not_publish_on_reply_channels_still_answers_every_call(
    private_redis: RedisProcess, stock_worker: Path
) -> None:
    with TaskClient(private_redis.url) as client:
        assert client.add(4, 7) == 11
        assert client.add.map([(i, i) for i in range(20)], chunk_size=1) == [2 * i for i in range(20)]
        assert list(client.add.imap([(i, 1) for i in range(10)], chunk_size=1)) == [i + 1 for i in range(10)]
    assert "Task math.add[" in stock_worker.read_text()  # the stock worker served them


def test_calls_answered_on_the_reply_channel_leave_nothing_in_the_result_thread(
    redis_url: str, worker: WorkerProcess
) -> None:
    # Calls of 0.3 s outlive a turn of the fallback timer (every REPLY_FALLBACK / 2 s), which
    # registers them with the result thread; answered on the reply channel, they are dropped there
    # when the timer comes round (no wake-up per call), so its tables empty within a bounded time.
    with TaskClient(redis_url) as client:
        values: list[int] = []
        threads = [threading.Thread(target=lambda: values.append(client.count_to(1, delay=0.3))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert values == [1] * 6
        watcher = client._runtime.watcher
        wait_until(lambda: not watcher._waiters and not watcher._unsubscribed, 10, "empty result-thread tables")
