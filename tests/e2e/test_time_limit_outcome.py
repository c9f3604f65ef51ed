"""issue 19: a call killed at its hard time limit (a prefork contract's bound) ends, for a caller
waiting with the default bound, in `TaskFailed` naming the time limit, promptly; not in a
`TaskTimeout` that leaves the caller to guess (the bound and the limit are the same seconds, and
the caller's clock starts first)."""

from __future__ import annotations

import time

import pytest

from task_client import TaskClient, TaskFailed

from ..catalog import diagnostics

pytestmark = pytest.mark.e2e


def test_a_call_killed_at_its_hard_time_limit_is_a_failure_naming_it(client: TaskClient) -> None:
    sleep = client.task(diagnostics.sleep)  # prefork, 3 s bound and hard time limit
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failure:
        sleep(30.0)
    assert failure.value.remote_type == "TimeLimitExceeded"
    assert time.monotonic() - started < diagnostics.sleep.timeout + 2 * 2.0 + 3.0  # bound + grace + read
    assert sleep(0.0) == 0.0


def test_a_call_that_started_late_and_was_killed_is_still_a_failure_naming_it(client: TaskClient) -> None:
    # Both pool processes busy for 2.5 s: the call starts about 2.5 s after its caller's clock, and
    # is killed about 5.5 s after it, past the bound (3 s) plus the 2 s the caller used to wait.
    sleep = client.task(diagnostics.sleep)
    busy = [sleep.submit(2.5) for _ in range(2)]
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failure:
        sleep(30.0)
    assert failure.value.remote_type == "TimeLimitExceeded"
    # At most: the bound, then the hard limit from a start before it, and the kill's grace.
    assert time.monotonic() - started < diagnostics.sleep.timeout * 2 + 2.0 + 3.0
    assert [handle.result(timeout=30) for handle in busy] == [2.5, 2.5]
