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
