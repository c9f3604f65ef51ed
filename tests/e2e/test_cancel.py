"""Cancel against real workers: a queued or scheduled call never runs and its waiter learns at once;
a running interruptible call is stopped; a running steady one finishes; a finished one is left
alone; a cancel survives a worker restart; the CLI and asyncio handles do the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from task_client import CancelResult, TaskCancelled, TaskClient
from task_contracts.wire import DEFERRED_KEY, TAKING_KEY
from task_server.testing import WorkerProcess, wait_until
from tests.conftest import REPO_ROOT
from tests.policies import contracts
from tests.policies.fixtures import Markers, StartWorker, markers, policy_client, start_worker, wait_for_log

__all__ = ["markers", "policy_client", "start_worker"]

pytestmark = pytest.mark.e2e

LONG = 60.0  # a waiter's bound, far longer than any cancel should take to reach it


def marker() -> str:
    return uuid.uuid4().hex[:12]


def test_a_queued_call_is_cancelled_never_runs_and_its_waiter_learns_at_once(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    worker = start_worker(concurrency=1)
    busy, queued = marker(), marker()
    holding = policy_client.task(contracts.hold_steady).submit(busy, 20)
    markers.wait_for_start(busy)
    handle = policy_client.task(contracts.stamp).with_options(timeout=LONG).submit(queued)
    assert handle.cancel() is CancelResult.CANCELLED
    started = time.monotonic()
    with pytest.raises(TaskCancelled) as caught:
        handle.result()
    assert time.monotonic() - started < LONG / 4
    assert caught.value.task_id == handle.id
    markers.release(busy)
    holding.result()
    wait_for_log(worker, f"{handle.id}]: cancelled before it started; not run")
    assert markers.starts(queued) == 0
    assert handle.status == "REVOKED"


def test_a_scheduled_call_cancelled_survives_a_worker_restart(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    first = start_worker(concurrency=1)
    name = marker()
    handle = policy_client.task(contracts.stamp).with_options(countdown=4).submit(name)
    wait_for_log(first, handle.id)  # the first worker holds the scheduled message in memory
    assert handle.cancel() is CancelResult.CANCELLED
    first.stop()  # a warm shutdown gives the held message back to Redis
    second = start_worker(concurrency=1)  # a new process: nothing of the first one's memory
    wait_for_log(second, f"{handle.id}]: cancelled before it started; not run")
    assert markers.starts(name) == 0
    with pytest.raises(TaskCancelled):
        handle.result()


def test_a_worker_started_after_a_cancel_needs_no_mingle_to_honour_it(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    name = marker()
    handle = policy_client.task(contracts.stamp).with_options(timeout=LONG).submit(name)
    assert handle.cancel() is CancelResult.CANCELLED  # no worker runs: only Redis knows of the cancel
    # Workers start without Celery's mingle by default (1 s less per start): the cancel is in Redis.
    worker = start_worker()
    wait_for_log(worker, f"{handle.id}]: cancelled before it started; not run")
    assert "mingle" not in worker.log()
    assert markers.starts(name) == 0
    asking = start_worker("--mingle")  # the opt-in asks its neighbours
    wait_for_log(asking, "mingle: ")


def test_a_running_interruptible_call_is_stopped(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    start_worker(concurrency=1)
    name = marker()
    handle = policy_client.task(contracts.hold).with_options(timeout=LONG).submit(name, 25)
    markers.wait_for_start(name)
    assert handle.cancel() is CancelResult.TERMINATED
    started = time.monotonic()
    with pytest.raises(TaskCancelled):
        handle.result()
    assert time.monotonic() - started < 20  # the hold would last 25 s
    assert handle.status == "REVOKED"
    # The worker goes on serving (its pool replaces the stopped process first).
    assert policy_client.task(contracts.stamp).with_options(timeout=30)(marker()) > 0


def test_a_running_steady_call_finishes_and_cancel_says_so(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    start_worker(concurrency=1)
    name = marker()
    handle = policy_client.task(contracts.hold_steady).submit(name, 20)
    markers.wait_for_start(name)
    assert handle.cancel() is CancelResult.RUNNING
    markers.release(name)
    assert handle.result() == 1


def test_cancelling_a_finished_call_is_a_harmless_no_op(policy_client: TaskClient, start_worker: StartWorker) -> None:
    start_worker(concurrency=1)
    handle = policy_client.task(contracts.stamp).submit(marker())
    value = handle.result()
    assert handle.cancel() is CancelResult.FINISHED
    assert handle.status == "SUCCESS"
    assert handle.result() == value


def test_async_handles_cancel_too(policy_client: TaskClient, start_worker: StartWorker) -> None:
    start_worker(concurrency=1)

    async def cancel_scheduled() -> tuple[CancelResult, BaseException | None]:
        handle = await policy_client.aio.task(contracts.stamp).with_options(countdown=30).submit(marker())
        outcome = await handle.cancel()
        try:
            await handle
        except TaskCancelled as error:
            return outcome, error
        return outcome, None

    outcome, error = asyncio.run(cancel_scheduled())
    assert outcome is CancelResult.CANCELLED
    assert isinstance(error, TaskCancelled)


def test_cli_cancel(redis_url: str, start_worker: StartWorker) -> None:
    """The command line cancels a call of a client holding the same cancel secret (TASK_CANCEL_SECRET)."""
    start_worker(concurrency=1)
    secret = uuid.uuid4().hex
    environment = {key: value for key, value in os.environ.items() if key != "TASK_BROKER_URL"}
    environment["TASK_CANCEL_SECRET"] = secret

    def task_client(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "task_client", "--broker-url", redis_url, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=environment)

    with TaskClient(redis_url, cancel_secret=secret) as policy_client:
        handle = policy_client.task(contracts.stamp).with_options(countdown=30).submit(marker())
        done = task_client("cancel", handle.id)
        assert (done.returncode, done.stdout) == (0, f"{handle.id}: cancelled\n"), done.stderr
        with pytest.raises(TaskCancelled):
            handle.result()
        again = task_client("cancel", handle.id, "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == {"task_id": handle.id, "cancel": "finished"}


def test_cancelling_an_id_nobody_published_says_unknown_and_stores_no_record(
    redis_url: str, policy_client: TaskClient, start_worker: StartWorker
) -> None:
    start_worker(concurrency=1)
    typo = f"typo-{marker()}"
    assert policy_client.cancel(typo) is CancelResult.UNKNOWN
    argv = [sys.executable, "-m", "task_client", "--broker-url", redis_url, "cancel", typo]
    environment = {key: value for key, value in os.environ.items() if key != "TASK_BROKER_URL"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=environment)
    assert (done.returncode, done.stdout) == (2, f"{typo}: unknown\n"), done.stderr
    assert f"no call with id {typo!r} is queued, running or finished" in done.stderr
    assert policy_client.task(contracts.stamp).handle(typo).status == "PENDING"  # no REVOKED record stored
    # A queued call on the client's queues is still found and cancelled.
    handle = policy_client.task(contracts.stamp).with_options(countdown=30).submit(marker())
    assert policy_client.cancel(handle.id) is CancelResult.CANCELLED


def test_cancelling_a_finished_call_by_id_reads_no_queue(
    policy_client: TaskClient, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its record answers the question: the broker's queues are searched only for an id nothing names.
    start_worker(concurrency=1)
    handle = policy_client.task(contracts.stamp).with_options(timeout=LONG).submit(marker())
    handle.result()
    searched: list[str] = []
    producer = policy_client._runtime.producer
    monkeypatch.setattr(producer, "find_message", lambda task_id, queues: searched.append(task_id))
    assert policy_client.cancel(handle.id) is CancelResult.FINISHED
    assert searched == []


def _local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (Linux: its fds' socket inodes in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _redis_time(server: redis.Redis) -> float:
    seconds, microseconds = server.time()
    return seconds + microseconds / 1e6


def _blocked_in_brpop(server: redis.Redis, worker: WorkerProcess) -> bool:
    """Whether one of the worker's main process's connections waits in BRPOP (it has popped nothing yet)."""
    ports = _local_ports(worker.pid)
    return any(
        int(entry["addr"].rsplit(":", 1)[1]) in ports and entry["cmd"] == "brpop" and "b" in entry["flags"]
        for entry in server.client_list()
    )


@pytest.mark.parametrize("canceller", ["same-client", "other-client"])
@pytest.mark.parametrize(
    ("task", "countdown"),
    [(contracts.stamp, 30), (contracts.stamp, None), (contracts.single, 30), (contracts.single, None)],
    ids=["prefork-countdown", "prefork-now", "threads-countdown", "threads-now"],
)
def test_a_call_a_worker_has_popped_and_not_yet_recorded_is_cancelled_not_unknown(
    redis_url: str, start_worker: StartWorker, task: Any, countdown: int | None, canceller: str
) -> None:
    """BRPOP takes the message off its queue before the worker writes its unacked entry: in between
    it is in no queue and no unacked hash (here for as long as the worker is frozen). A cancel by id
    still stops the call and wakes its waiter: the client that published it knows it did; another
    (sharing its cancel secret: the command line, say) sees the BRPOP's member in the taking set and,
    since the frozen worker does not record the message within the search's bound, cannot tell
    that the id is unknown."""
    secret = uuid.uuid4().hex
    worker = start_worker(concurrency=1)
    server = redis.Redis.from_url(redis_url)
    with TaskClient(redis_url, cancel_secret=secret) as caller, TaskClient(redis_url, cancel_secret=secret) as other:
        wait_until(lambda: _blocked_in_brpop(server, worker), 30, "the worker to wait in BRPOP")
        worker.freeze()
        frozen = _redis_time(server)
        try:
            arguments = (marker(),) if task is contracts.stamp else (0.0,)
            handle = caller.task(task).with_options(timeout=LONG, countdown=countdown).submit(*arguments)
            wait_until(lambda: server.llen(contracts.QUEUE) == 0, 30, "the frozen worker's BRPOP to take the message")
            assert handle.id.encode() not in b"".join(server.hvals("unacked"))  # kombu's record: not written yet
            assert (caller if canceller == "same-client" else other).cancel(handle.id) is CancelResult.CANCELLED
        finally:
            thawed = _redis_time(server)
            worker.thaw()
        started = time.monotonic()
        with pytest.raises(TaskCancelled):
            handle.result()
        assert time.monotonic() - started < LONG / 4
        if countdown is None:  # a scheduled call is dropped when due, 30 s from now
            wait_for_log(worker, f"{handle.id}]: cancelled before it started; not run")
        # Its entry written, the member of the frozen BRPOP is gone with it: a later search waits for nothing.
        wait_until(lambda: not server.zrangebyscore(TAKING_KEY, frozen, thawed), 30, "its BRPOP's member to go")
    server.close()


def test_a_call_held_far_ahead_in_the_deferred_set_is_found_by_a_cancel_by_id(
    redis_url: str, start_worker: StartWorker
) -> None:
    """A call due beyond the worker's `--eta-horizon` waits in the sorted set `task-sdk-deferred`,
    acknowledged: in no queue and no unacked hash. Another client's cancel by id finds it there."""
    secret = uuid.uuid4().hex
    worker = start_worker("--eta-horizon", "5", concurrency=1)
    with TaskClient(redis_url, cancel_secret=secret) as caller, TaskClient(redis_url, cancel_secret=secret) as other:
        handle = caller.task(contracts.stamp).with_options(countdown=3600).submit(marker())
        with redis.Redis.from_url(redis_url) as server:
            wait_until(lambda: handle.id.encode() in b"".join(server.zrange(DEFERRED_KEY, 0, -1)), 30, "the deferral")
            wait_until(lambda: handle.id.encode() not in b"".join(server.hvals("unacked")), 30, "its acknowledgement")
        assert other.cancel(handle.id) is CancelResult.CANCELLED
        with pytest.raises(TaskCancelled):
            handle.result()
    assert worker.alive()
