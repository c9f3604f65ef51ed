"""Failure mode 4m: messages that share one delivery tag (`celery-ts` sends a fixed one; any producer may).

kombu keys its record of a delivered message, in the worker's memory and in the unacked hash, by
the producer's tag: messages sharing one had one record between them. Before, a warm shutdown
holding 6 such calls put 1 back and lost 5, and a worker killed while running 2 lost 1 (as stock
Celery does). Now every delivery gets a tag of the worker's own (`_batch_pop`), and each call is
answered exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import diagnostics, serving
from .raw_messages import envelope, json_body, push_raw

pytestmark = pytest.mark.e2e

SHARED_TAG = "celery-ts"  # one tag for every message, as celery-ts 1.2.3 sends


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    directory = tmp_path / "diagnostics"
    directory.mkdir()
    return directory


@pytest.fixture
def start_worker(private_redis: RedisProcess, markers: Path, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*extra_args: str, concurrency: int = 1) -> WorkerProcess:
        worker = WorkerProcess(
            private_redis.url,
            concurrency=concurrency,
            extra_args=("--visibility-timeout", "5", *extra_args),
            logdir=str(tmp_path),
            **serving({"TASK_DIAGNOSTICS_DIR": str(markers)}),
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def push_holds(url: str, count: int) -> dict[str, str]:
    """LPUSH `count` calls of `diagnostics.hold`, all with the delivery tag `SHARED_TAG`: marker -> task id."""
    calls = {f"shared-{number}": str(uuid.uuid4()) for number in range(count)}
    for marker, task_id in calls.items():
        item = json.loads(
            envelope("diagnostics.hold", json_body([marker, 25.0], {}), task_id=task_id, queue="diagnostics")
        )
        item["properties"]["delivery_tag"] = SHARED_TAG
        push_raw(url, "diagnostics", json.dumps(item).encode())
    return calls


def starts(markers: Path, marker: str) -> int:
    path = markers / f"{marker}.starts"
    return len(path.read_text().split()) if path.exists() else 0


def answers(url: str, calls: dict[str, str]) -> dict[str, int]:
    """Each call's result (its number of starts): a lost call raises `TaskTimeout`."""
    with TaskClient(url) as client:
        hold = client.task(diagnostics.hold)
        return {marker: hold.handle(task_id).result(timeout=30) for marker, task_id in calls.items()}


def test_a_warm_shutdown_puts_back_every_held_call_that_shares_a_tag(
    private_redis: RedisProcess, start_worker: Callable[..., WorkerProcess], markers: Path
) -> None:
    first = start_worker("--prefetch-multiplier", "6")  # 6 held: 1 running, 5 reserved
    calls = push_holds(private_redis.url, 6)
    store = redis.Redis.from_url(private_redis.url)
    try:
        wait_until(lambda: store.llen("diagnostics") == 0, 30, "the worker to take all 6 calls (1 running, 5 reserved)")
        # Taken off the list is not started yet: the running call's marker comes moments later.
        wait_until(lambda: sum(starts(markers, marker) for marker in calls) >= 1, 30, "the first call to run")
        running = [marker for marker in calls if starts(markers, marker)]
        assert len(running) == 1
        wait_until(lambda: store.hlen("unacked") == 6, 10, "one unacked record per call held")
        first.signal(signal.SIGTERM)  # warm shutdown: the running call finishes, the reserved go back
        (markers / f"{running[0]}.release").touch()
        wait_until(lambda: not first.alive(), 30, "the warm shutdown")
        assert store.llen("diagnostics") == 5
        assert store.hlen("unacked") == 0
    finally:
        store.close()
    for marker in calls:
        (markers / f"{marker}.release").touch()
    start_worker()
    assert answers(private_redis.url, calls) == dict.fromkeys(calls, 1)  # each started once, none lost


def test_a_killed_worker_brings_back_every_call_that_shares_a_tag(
    private_redis: RedisProcess, start_worker: Callable[..., WorkerProcess], markers: Path
) -> None:
    first = start_worker(concurrency=2)
    calls = push_holds(private_redis.url, 4)
    store = redis.Redis.from_url(private_redis.url)
    try:
        wait_until(lambda: store.llen("diagnostics") == 0, 30, "the worker to take all 4 calls")
        wait_until(lambda: sum(starts(markers, marker) for marker in calls) == 2, 30, "2 calls to run")
        wait_until(lambda: store.hlen("unacked") == 4, 10, "one unacked record per call held")
        os.killpg(first.pid, signal.SIGKILL)
        wait_until(lambda: not first.alive(), 10, "the kill")
        running = {marker for marker in calls if starts(markers, marker)}
    finally:
        store.close()
    for marker in calls:
        (markers / f"{marker}.release").touch()
    start_worker()  # restores the lost worker's calls after the visibility timeout (5 s)
    # The 2 that ran start again (idempotent), the 2 reserved start once: each answered, none lost.
    assert answers(private_redis.url, calls) == {marker: 2 if marker in running else 1 for marker in calls}


def test_two_workers_holding_calls_that_share_a_tag_keep_each_others_records(
    private_redis: RedisProcess, start_worker: Callable[..., WorkerProcess], markers: Path
) -> None:
    """Before, the second worker's record of a tag overwrote the first's, and its ack removed the
    only record left: calls of a worker killed meanwhile were lost. Now every record is its own."""
    first, second = start_worker("--prefetch-multiplier", "2"), start_worker("--prefetch-multiplier", "2")
    calls = push_holds(private_redis.url, 4)
    store = redis.Redis.from_url(private_redis.url)
    try:
        wait_until(lambda: store.llen("diagnostics") == 0, 30, "the workers to take all 4 calls")
        wait_until(lambda: sum(starts(markers, marker) for marker in calls) == 2, 30, "each worker to run a call")
        wait_until(lambda: store.hlen("unacked") == 4, 10, "one unacked record per call held")
        os.killpg(first.pid, signal.SIGKILL)
        wait_until(lambda: not first.alive(), 10, "the kill")
    finally:
        store.close()
    for marker in calls:
        (markers / f"{marker}.release").touch()
    # The second worker finishes its own calls and, after the visibility timeout, the first's: each
    # answered, by its last start (the first's running call starts twice, the others once).
    results = answers(private_redis.url, calls)
    assert results == {marker: starts(markers, marker) for marker in calls}
    assert sorted(results.values()) == [1, 1, 1, 2] and second.alive()
