"""Per-call schedule against real workers: countdown and eta (not run before due, and the wait bound
counts from then), expiry (never run, `TaskExpired` at expiry even when no worker sees the call),
priority, and the same options on batches, asyncio and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from task_client import TaskClient, TaskExpired
from tests.conftest import REPO_ROOT
from tests.policies import contracts
from tests.policies.fixtures import Markers, StartWorker, markers, policy_client, start_worker, wait_for_log

__all__ = ["markers", "policy_client", "start_worker"]

pytestmark = pytest.mark.e2e

UTC = dt.UTC


def marker() -> str:
    return uuid.uuid4().hex[:12]


def task_client(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "TASK_BROKER_URL"}
    argv = [sys.executable, "-m", "task_client", "--broker-url", url, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=environment)


def test_countdown_result_arrives_no_sooner_than_due(client: TaskClient) -> None:
    published = time.monotonic()
    assert client.add.with_options(countdown=2)(4, 7) == 11
    assert time.monotonic() - published >= 2.0


def test_eta_and_countdown_run_on_the_worker_no_sooner_than_due(
    policy_client: TaskClient, start_worker: StartWorker
) -> None:
    start_worker(concurrency=2)
    stamp = policy_client.task(contracts.stamp)
    due = dt.datetime.now(UTC) + dt.timedelta(seconds=1.5)
    by_eta = stamp.with_options(eta=due).submit(marker())
    counted = stamp.with_options(countdown=1.5).submit(marker())
    counted_due = counted.schedule.eta if counted.schedule else None
    assert counted_due is not None
    assert by_eta.result() >= due.timestamp()
    assert counted.result() >= counted_due.timestamp()


def test_scheduled_calls_served_from_threads_leave_the_worker_serving(client: TaskClient) -> None:
    # math.mul is served from the worker's threads (cpu_bound=False); more scheduled calls than the
    # worker has processes once exhausted the process pool's semaphore and stopped the worker.
    handles = [client.mul.with_options(countdown=0.5).submit(i, i) for i in range(4)]
    assert [handle.result() for handle in handles] == [0, 1, 4, 9]
    assert client.mul.map([(1, 1)] * 20, chunk_size=1, timeout=30) == [1] * 20


def test_the_wait_bound_of_a_scheduled_call_counts_from_when_it_is_due(client: TaskClient) -> None:
    # Due in 3 s with a 1 s bound: counted from publication it would time out.
    assert client.add.with_options(countdown=3, timeout=1.5)(1, 2) == 3
    # The same for streams, in input order and as they finish.
    scheduled = client.add.with_options(countdown=3, timeout=1.5)
    assert list(scheduled.imap([(1, 2), (3, 4)], chunk_size=1)) == [3, 7]
    assert sorted(scheduled.as_completed([(1, 2), (3, 4)], chunk_size=1)) == [(0, 3), (1, 7)]


def test_naive_datetimes_and_bad_options_are_refused_before_publishing(client: TaskClient) -> None:
    with pytest.raises(TypeError, match="naive datetime"):
        client.add.with_options(eta=dt.datetime.now())
    with pytest.raises(TypeError, match="naive datetime"):
        client.add.with_options(expires=dt.datetime.now())
    with pytest.raises(TypeError, match="not both"):
        client.add.with_options(countdown=1, eta=dt.datetime.now(UTC))
    with pytest.raises(ValueError, match="priority"):
        client.add.with_options(priority=10)
    with pytest.raises(ValueError, match="countdown"):
        client.add.with_options(countdown=-1)


def test_a_call_no_worker_sees_expires_at_its_expiry_not_at_its_timeout(client: TaskClient) -> None:
    # Nobody consumes this queue: only the client can end the wait.
    remote = client.add.with_options(queue=f"nobody-{marker()}", expires=1, timeout=30)
    handle = remote.submit(1, 2)
    started = time.monotonic()
    with pytest.raises(TaskExpired) as caught:
        handle.result()
    assert time.monotonic() - started < 15
    assert caught.value.task_id == handle.id
    assert handle.status == "REVOKED"


def test_an_expired_call_never_runs_on_the_worker(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    worker = start_worker(concurrency=1)
    busy, late = marker(), marker()
    holding = policy_client.task(contracts.hold_steady).submit(busy, 20)
    markers.wait_for_start(busy)
    # Queued behind the busy worker past its expiry.
    expiring = policy_client.task(contracts.stamp).with_options(expires=1).submit(late)
    with pytest.raises(TaskExpired):
        expiring.result(timeout=20)
    markers.release(busy)
    assert holding.result() == 1
    wait_for_log(worker, expiring.id)  # the worker took the message and dropped it
    after = policy_client.task(contracts.stamp)(marker())  # anything queued before has been handled
    assert after > 0
    assert markers.starts(late) == 0


def test_expiry_of_a_call_that_already_started_lets_it_finish(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    start_worker(concurrency=1)
    name = marker()
    handle = policy_client.task(contracts.hold_steady).with_options(expires=1).submit(name, 3)
    markers.wait_for_start(name)
    assert handle.result(timeout=20) == 1


def test_priority_zero_is_served_first_on_redis(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    # One process reserving one message at a time: what waits in Redis is taken by priority.
    start_worker("--prefetch-multiplier", "1", concurrency=1)
    busy = marker()
    holding = policy_client.task(contracts.hold_steady).submit(busy, 20)
    markers.wait_for_start(busy)
    stamp = policy_client.task(contracts.stamp)
    low = [stamp.with_options(priority=9).submit(marker()) for _ in range(3)]
    high = stamp.with_options(priority=0).submit(marker())
    markers.release(busy)
    holding.result()
    assert high.result() < min(handle.result() for handle in low)


def test_schedule_options_apply_to_batches_and_asyncio(policy_client: TaskClient, start_worker: StartWorker) -> None:
    start_worker(concurrency=2)
    stamp = policy_client.task(contracts.stamp).with_options(countdown=1)
    published = time.time()
    handles = stamp.submit_many([(marker(),), (marker(),)])
    values = stamp.map([(marker(),), (marker(),)])
    assert all(handle.result() >= published + 1 for handle in handles)
    assert all(value >= published + 1 for value in values)

    async def scheduled() -> float:
        remote = policy_client.aio.task(contracts.stamp).with_options(countdown=1)
        return await remote(marker())

    published = time.time()
    assert asyncio.run(scheduled()) >= published + 1

    async def expired() -> None:
        remote = policy_client.aio.task(contracts.stamp)
        handle = await remote.with_options(queue=f"nobody-{marker()}", expires=0.5, timeout=30).submit(marker())
        await handle

    started = time.monotonic()
    with pytest.raises(TaskExpired):
        asyncio.run(expired())
    assert time.monotonic() - started < 15


def test_cli_schedule_flags(redis_url: str, start_worker: StartWorker) -> None:
    start_worker(concurrency=1)
    common = ("--catalog", "tests.policies.contracts:CATALOG")
    published = time.time()
    done = task_client(*common, "call", "stamp", marker(), "--countdown", "1", "--priority", "3", url=redis_url)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) >= published + 1
    due = (dt.datetime.now(UTC) + dt.timedelta(seconds=1)).isoformat()
    done = task_client(*common, "call", "stamp", marker(), "--eta", due, "--expires", "60", url=redis_url)
    assert done.returncode == 0, done.stderr
    naive = task_client(*common, "call", "stamp", marker(), "--eta", "2030-01-01T00:00:00", url=redis_url)
    assert naive.returncode == 2 and "time zone" in naive.stderr
    expired = task_client(
        *common, "call", "stamp", marker(), "--queue", f"nobody-{marker()}", "--expires", "1", "--json", url=redis_url
    )
    assert expired.returncode == 7, expired.stderr
    assert json.loads(expired.stdout)["status"] == "EXPIRED"
