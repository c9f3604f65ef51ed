"""issue 19: a call killed at its hard time limit (a prefork contract's bound) ends, for a caller
waiting with the default bound, in `TaskFailed` naming the time limit, promptly; not in a
`TaskTimeout` that leaves the caller to guess (the bound and the limit are the same seconds, and
the caller's clock starts first)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from task_client import TaskClient, TaskFailed
from task_server.testing import RedisProcess, WorkerProcess

from ..catalog import diagnostics, serving

pytestmark = pytest.mark.e2e


@pytest.fixture
def idle_client(private_redis: RedisProcess, tmp_path: Path) -> Iterator[TaskClient]:
    """A client of a worker of its own, idle: the session's worker may still be busy with calls an
    earlier test left running, and a call that has not started when its bound passes is a TaskTimeout."""
    with WorkerProcess(private_redis.url, concurrency=2, logdir=str(tmp_path), **serving()) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            # Served once first: a pool process still starting when a timed call's bound passes makes
            # it rightly a TaskTimeout (a fresh-clone make test at load 6 failed so, Dec 4 2026).
            assert client.task(diagnostics.sleep).submit(0.0).result(timeout=30) == 0.0
            yield client


def test_a_call_killed_at_its_hard_time_limit_is_a_failure_naming_it(idle_client: TaskClient) -> None:
    sleep = idle_client.task(diagnostics.sleep)  # prefork, 3 s bound and hard time limit
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failure:
        sleep(30.0)
    assert failure.value.remote_type == "TimeLimitExceeded"
    assert time.monotonic() - started < diagnostics.sleep.timeout + 2 * 2.0 + 3.0  # bound + grace + read
    assert sleep(0.0) == 0.0


def test_a_call_that_started_late_and_was_killed_is_still_a_failure_naming_it(idle_client: TaskClient) -> None:
    # Both pool processes busy for 2.5 s: the call starts about 2.5 s after its caller's clock, and
    # is killed about 5.5 s after it, past the bound (3 s) plus the 2 s the caller used to wait.
    sleep = idle_client.task(diagnostics.sleep)
    busy = [sleep.submit(2.5) for _ in range(2)]
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failure:
        sleep(30.0)
    assert failure.value.remote_type == "TimeLimitExceeded"
    # At most: the bound, then the hard limit from a start before it, and the kill's grace.
    assert time.monotonic() - started < diagnostics.sleep.timeout * 2 + 2.0 + 3.0
    assert [handle.result(timeout=30) for handle in busy] == [2.5, 2.5]
