"""Fault 7: load. 200 threads share one TaskClient and make 50 calls each against 2 worker
processes; every one of the 10,000 results is the answer to its own arguments, exactly once. On
Redis and RabbitMQ (`every_broker`), and through Redis Sentinel (a master, a replica, three sentinels).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import SentinelGroup, WorkerProcess

from ..brokers import Broker

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]

THREADS = 200
CALLS_PER_THREAD = 50
CALL_BOUND = 120.0  # per call; a loaded 2-core machine answers in well under a second


@contextlib.contextmanager
def two_worker_processes(url: str, result_backend: str, logdir: Path) -> Iterator[list[WorkerProcess]]:
    workers = [WorkerProcess(url, result_backend=result_backend, concurrency=1, logdir=str(logdir)) for _ in range(2)]
    try:
        for process in workers:
            process.start()
        yield workers
    finally:
        for process in workers:
            process.stop()


@pytest.fixture
def two_workers(private_broker: Broker, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    with two_worker_processes(private_broker.url, private_broker.result_backend, tmp_path) as workers:
        yield workers


@pytest.fixture
def sentinel_workers(tmp_path: Path) -> Iterator[tuple[SentinelGroup, list[WorkerProcess]]]:
    with SentinelGroup(str(tmp_path / "sentinel")) as group:
        group.start()
        with two_worker_processes(group.url, group.url, tmp_path) as workers:
            yield group, workers


@pytest.mark.timeout(900)
def test_10000_calls_from_200_threads_sharing_one_client(
    private_broker: Broker, two_workers: list[WorkerProcess]
) -> None:
    calls_from_threads(private_broker.url, private_broker.result_backend, two_workers)


@pytest.mark.timeout(900)
def test_the_same_load_through_redis_sentinel(sentinel_workers: tuple[SentinelGroup, list[WorkerProcess]]) -> None:
    group, workers = sentinel_workers
    calls_from_threads(group.url, group.url, workers)


def calls_from_threads(url: str, result_backend: str, two_workers: list[WorkerProcess]) -> None:
    answers: list[tuple[int, int, str, int]] = []  # (thread, call, task id, result)
    failures: list[BaseException] = []
    record = threading.Lock()
    start = threading.Barrier(THREADS)

    with TaskClient(url, result_backend) as client:
        add = client.add.with_options(timeout=CALL_BOUND)

        def calls(thread: int) -> None:
            start.wait(timeout=60)
            try:
                for call in range(CALLS_PER_THREAD):
                    handle = add.submit(thread * 100_000, call)
                    value = handle.result()
                    with record:
                        answers.append((thread, call, handle.id, value))
            except BaseException as error:  # reported below, with the thread that raised it
                with record:
                    failures.append(error)

        threads = [threading.Thread(target=calls, args=(n,), name=f"caller-{n}") for n in range(THREADS)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=800)
        elapsed = time.monotonic() - began
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(answers) == THREADS * CALLS_PER_THREAD
    assert all(value == thread * 100_000 + call for thread, call, _, value in answers)
    assert len({(thread, call) for thread, call, _, _ in answers}) == THREADS * CALLS_PER_THREAD  # none twice
    assert len({task_id for _, _, task_id, _ in answers}) == THREADS * CALLS_PER_THREAD
    served = [process.log().count("math.add[") for process in two_workers]
    assert len(served) == 2 and all(count > 0 for count in served)  # both worker processes took part
    print(f"\n10,000 calls from {THREADS} threads in {elapsed:.1f} s ({len(answers) / elapsed:.0f} calls/s)")
