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
import redis as redis_py

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import diagnostics, serving

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


def test_results_are_stored_after_redis_forgot_its_scripts(tmp_path: Path) -> None:
    """The worker stores records, asks for admissions and pops backlogs by the scripts' SHAs; a Redis
    that lost its scripts (SCRIPT FLUSH, a restart, a failover to a replica that never saw them) is
    sent the script itself, and nothing is lost or run twice."""
    redis = RedisProcess(workdir=str(tmp_path)).start()
    try:
        with (
            WorkerProcess(redis.url, concurrency=1, logdir=str(tmp_path)) as worker,
            TaskClient(redis.url) as client,
            redis_py.Redis.from_url(redis.url) as admin,
        ):
            worker.start()
            for round_ in range(3):
                admin.script_flush()
                assert client.add(round_, 2) == round_ + 2  # on the event loop
                assert client.mul(round_, 3) == 3 * round_  # on a thread
                assert client.add.map([(round_, 1), (1, 1)]) == [round_ + 1, 2]  # a chunk, in a pool process
                admin.script_flush()
                with concurrent.futures.ThreadPoolExecutor(8) as callers:  # a backlog: batch pops
                    assert list(callers.map(client.add, range(32), [round_] * 32)) == [n + round_ for n in range(32)]
            assert "NOSCRIPT" not in worker.log()
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


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_redis_crash_during_a_call_leaves_the_worker_serving(pool: str, tmp_path: Path) -> None:
    """issue 19 item 2, as reported: one slow call running, the worker waiting on Redis for more
    (its BRPOP outstanding) when Redis is killed and restarted without persistence."""
    redis = RedisProcess(workdir=str(tmp_path)).start()
    args = ["--no-inline"] if pool == "threads" else []
    try:
        with (
            WorkerProcess(redis.url, concurrency=2, logdir=str(tmp_path), extra_args=args, **serving()) as worker,
            TaskClient(redis.url) as client,
        ):
            worker.start()
            pid = worker.pid
            if pool == "prefork":
                slow = client.count_to.with_options(timeout=60).submit(30, 0.1)
            else:
                slow = client.task(diagnostics.nap).with_options(timeout=60).submit(2.5)
            wait_until(lambda: f"{slow.id}] received" in worker.log(), 30, "the slow call to start")

            redis = restart(redis, kill=True)

            reconnected = lambda: worker.log().count("Connected to redis://") >= 2  # noqa: E731
            wait_until(lambda: not worker.alive() or reconnected(), 60, "the worker to reconnect or exit")
            assert worker.alive() and worker.pid == pid, worker.log()[-3000:]
            # It ran through the outage and stored its result in the new Redis.
            assert slow.result(timeout=60) == (30 if pool == "prefork" else THREAD)
            assert client.add.with_options(timeout=30)(4, 7) == 11
            assert worker.alive() and "Unrecoverable error" not in worker.log()
    finally:
        redis.stop()


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_redis_crash_with_calls_in_flight_leaves_the_worker_serving_and_loses_no_call(
    pool: str, tmp_path: Path
) -> None:
    """issue 19 item 2: a SIGKILL and restart of Redis during a `count_to` and a `map` stopped the
    worker ("Unrecoverable error: AttributeError ... 'hostname'", from restoring or acknowledging
    through the closed connection). `prefork`: the calls run in pool processes; `threads`: on the
    main process's threads (`cpu_bound=False` contracts, `--no-inline` so none runs on the loop).

    Redis is killed once the worker holds a full prefetch window (8 messages: some running, the
    rest waiting in its memory, and no pop outstanding: a message popped by a reply that Redis never
    sent is beyond any worker's reach). Redis persists every write (`appendfsync always`)."""
    redis = RedisProcess(workdir=str(tmp_path), appendonly=True, extra_args=["--appendfsync", "always"]).start()
    args = ["--visibility-timeout", "5", *(["--no-inline"] if pool == "threads" else [])]
    slow_task, mapped_task = (diagnostics.sleep, diagnostics.sleep) if pool == "prefork" else (diagnostics.nap,) * 2
    try:
        with (
            WorkerProcess(redis.url, concurrency=2, logdir=str(tmp_path), extra_args=args, **serving()) as worker,
            TaskClient(redis.url) as client,
            concurrent.futures.ThreadPoolExecutor(1) as waiter,
        ):
            slow = client.count_to.with_options(timeout=90).submit(30, 0.1) if pool == "prefork" else None
            mapped = waiter.submit(client.task(mapped_task).map, [(1.0,)] * 12, timeout=90, chunk_size=1)
            # Published before the worker starts, so the fault meets the calls in flight, not the publishing.
            with redis_client(redis) as broker:
                wait_until(lambda: broker.llen("diagnostics") == 12, 30, "the map's 12 messages on the queue")
            worker.start()
            pid = worker.pid
            wait_until(lambda: worker.log().count("] received") >= 8, 30, "a full prefetch window")

            redis = restart(redis, kill=True)

            reconnected = lambda: worker.log().count("Connected to redis://") >= 2  # noqa: E731
            wait_until(lambda: not worker.alive() or reconnected(), 60, "the worker to reconnect or exit")
            assert worker.alive() and worker.pid == pid, worker.log()[-3000:]
            if slow is not None:
                assert slow.result(timeout=90) == 30
            expected = 1.0 if pool == "prefork" else THREAD
            assert mapped.result(timeout=100) == [expected] * 12
            assert client.task(slow_task).with_options(timeout=30)(0.0) == (0.0 if pool == "prefork" else THREAD)
            assert client.add.with_options(timeout=30)(4, 7) == 11
            assert worker.alive() and worker.pid == pid, worker.log()[-3000:]
            assert "Unrecoverable error" not in worker.log()
    finally:
        redis.stop()


class _OnAThread:
    """Equal to the name of a worker thread other than the event loop's (`diagnostics.nap` returns it)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other != "MainThread"

    def __repr__(self) -> str:
        return "<a worker thread>"


THREAD = _OnAThread()


def redis_client(redis: RedisProcess) -> redis_py.Redis:
    return redis_py.Redis.from_url(redis.url, socket_timeout=5)
