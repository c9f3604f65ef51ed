"""Fault 4: Redis restarted while workers run.

Workers reconnect by themselves; the next call succeeds, also from the same client instance
(its producer reconnects and its result subscription is renewed). With persistence (appendonly),
calls queued before the restart still run after it, even when Redis was killed outright.
"""

from __future__ import annotations

import concurrent.futures
import signal
from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

pytestmark = pytest.mark.e2e


def restart(redis: RedisProcess, *, kill: bool = False) -> RedisProcess:
    """Stop `redis` (SIGTERM, or SIGKILL for a crash) and start a new one on the same port and data."""
    if kill:
        redis.signal(signal.SIGKILL)
        wait_until(lambda: not redis.alive(), 10, "redis-server to die")
    redis.stop()
    return RedisProcess(redis.port, appendonly=redis.appendonly, workdir=str(redis.workdir)).start()


def test_workers_and_the_same_client_recover_from_a_redis_restart(tmp_path: Path) -> None:
    redis = RedisProcess(workdir=str(tmp_path)).start()
    try:
        with (
            WorkerProcess(redis.url, concurrency=1, logdir=str(tmp_path)) as worker,
            TaskClient(redis.url) as client,
        ):
            worker.start()
            assert client.add(1, 2) == 3
            worker_pid = worker.pid

            redis = restart(redis)

            # The worker needs a moment to reconnect (2 s retry interval); the call waits for it.
            assert client.add.with_options(timeout=30)(20, 22) == 42
            assert [client.mul(i, 2) for i in range(5)] == [0, 2, 4, 6, 8]
            with TaskClient(redis.url) as fresh:
                assert fresh.add(2, 2) == 4
            assert worker.alive() and worker.pid == worker_pid  # the same process reconnected
            assert worker.log().count("Connected to redis://") >= 2
    finally:
        redis.stop()


def test_calls_queued_before_a_crash_of_a_persistent_redis_run_after_it(tmp_path: Path) -> None:
    redis = RedisProcess(workdir=str(tmp_path), appendonly=True).start()
    try:
        with TaskClient(redis.url) as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
            handles = [client.add.submit(i, 100) for i in range(5)]  # no worker yet: they stay queued
            # One caller keeps waiting through the crash and restart: its subscription must be renewed.
            waiting = pool.submit(handles[0].result, 60.0)
            # Data handed to the kernel survives the process; wait until the AOF holds every message.
            wait_until(lambda: all(h.id.encode() in aof_bytes(redis.workdir) for h in handles), 10, "the AOF")

            redis = restart(redis, kill=True)

            with WorkerProcess(redis.url, concurrency=1, logdir=str(tmp_path)) as worker:
                worker.start()
                assert waiting.result(timeout=60) == 100
                assert [h.result(timeout=30) for h in handles] == [i + 100 for i in range(5)]
                assert client.add(1, 1) == 2
    finally:
        redis.stop()


def aof_bytes(workdir: Path) -> bytes:
    # redis 6 writes appendonly.aof; redis 7 writes several files under appendonlydir/.
    return b"".join(path.read_bytes() for path in workdir.rglob("*.aof*") if path.is_file())
