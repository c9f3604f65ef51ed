"""A worker meeting a backlog on Redis: several messages per round trip, each run exactly once.

Calls are queued before any worker runs; a real worker then starts on them. The batch pop
(`task_server._batch_pop`) and the unacked record written without waiting (`task_server._unacked`)
must deliver each message once, drop an unreadable item alone, and leave kombu's unacked record
empty once every call is acknowledged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from .raw_messages import json_body, push, push_raw

pytestmark = pytest.mark.e2e

BACKLOG = 300


def commands_called(connection: redis.Redis, command: str) -> int:
    stats = connection.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


# math.mul is served from threads: calls finish while others are taken, so two or more are in
# flight. math.add, declared on_event_loop, runs and is acknowledged before the next pop: only a
# BRPOP answered at once (its message was waiting) tells that a backlog is there.
@pytest.mark.parametrize(("contract", "expected"), [("mul", lambda i: i * i), ("add", lambda i: i + i)])
def test_a_backlog_is_taken_several_messages_a_round_trip_and_each_runs_once(
    private_redis: RedisProcess, tmp_path: Path, contract: str, expected: Callable[[int], int]
) -> None:
    connection = redis.Redis.from_url(private_redis.url)
    with TaskClient(private_redis.url) as client:
        handles = getattr(client, contract).submit_many([(i, i) for i in range(BACKLOG)])
        assert connection.llen("math") == BACKLOG
        with WorkerProcess(private_redis.url, logdir=str(tmp_path)) as worker:
            worker.start()
            assert [handle.result(timeout=60) for handle in handles] == [expected(i) for i in range(BACKLOG)]
            received = re.findall(rf"Task math\.{contract}\[([0-9a-f-]+)\] received", worker.log())
            assert sorted(received) == sorted(handle.id for handle in handles)  # each exactly once
            # One BRPOP a message would be BACKLOG of them; batches take several at a time.
            assert commands_called(connection, "brpop") < BACKLOG * 2 // 3
            # Every acknowledgement reached kombu's unacked record.
            wait_until(
                lambda: connection.hlen("unacked") == 0 and connection.zcard("unacked_index") == 0,
                10,
                "the unacked record to be empty",
            )
    connection.close()


def test_an_unreadable_item_inside_a_backlog_is_dropped_alone(private_redis: RedisProcess, tmp_path: Path) -> None:
    url = private_redis.url
    first = [push(url, "math.add", json_body([i, 1], {}), queue="math") for i in range(5)]
    push_raw(url, "math", b"this is not a Celery message envelope")
    second = [push(url, "math.add", json_body([i, 2], {}), queue="math") for i in range(5)]
    with WorkerProcess(url, logdir=str(tmp_path)) as worker, TaskClient(url) as client:
        worker.start()
        assert [client.add.handle(task_id).result(timeout=30) for task_id in first] == [i + 1 for i in range(5)]
        assert [client.add.handle(task_id).result(timeout=30) for task_id in second] == [i + 2 for i in range(5)]
        assert "dropped an item on a task queue that is not a Celery message envelope" in worker.log()
        assert client.add(4, 7) == 11  # still serving


def test_a_default_worker_says_it_is_ready_and_logs_no_line_per_task(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), loglevel=None) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            assert client.add(4, 7) == 11
        log = worker.log()
        assert "task-server: ready" in log
        assert "queues math, reports" in log  # its own start-up line
        assert " received" not in log and " succeeded in " not in log
