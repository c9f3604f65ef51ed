"""Fault 2: no worker serves the queue, or the worker is slower than the bound.

`TaskTimeout` comes at the contract's bound or the per-call one, and the call can be waited on
again later by its id, from the same client or another one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from task_client import TaskClient, TaskTimeout
from task_server.testing import RedisProcess, WorkerProcess

from ..catalog import diagnostics, serving

pytestmark = pytest.mark.e2e


def test_no_worker_times_out_at_the_contract_bound_and_the_call_runs_once_one_starts(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    with TaskClient(private_redis.url) as client:
        started = time.monotonic()
        with pytest.raises(TaskTimeout) as caught:
            client.task(diagnostics.sleep)(0.1)  # nobody consumes the diagnostics queue yet
        took = time.monotonic() - started
        error = caught.value
        assert error.timeout == diagnostics.sleep.timeout == 3.0
        assert error.contract == "diagnostics.sleep" and error.task_id
        assert "no result within 3 s" in str(error) and ".handle(task_id).result()" in str(error)
        # The bound, then one quick read of the backend; never much more.
        assert 3.0 <= took < 3.0 + 2.0
        assert client.task(diagnostics.sleep).handle(error.task_id).status == "PENDING"

        with WorkerProcess(
            private_redis.url, concurrency=1, queues=["diagnostics"], logdir=str(tmp_path), **serving()
        ) as worker:
            worker.start()
            assert client.task(diagnostics.sleep).handle(error.task_id).result(timeout=30) == 0.1
            with TaskClient(private_redis.url) as another:  # the id alone is enough
                assert another.task(diagnostics.sleep).handle(error.task_id).result(timeout=10) == 0.1


def test_a_task_slower_than_the_per_call_bound_times_out_and_can_be_waited_on_again(client: TaskClient) -> None:
    impatient = client.task(diagnostics.sleep).with_options(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TaskTimeout) as caught:
        impatient(2.0)
    took = time.monotonic() - started
    assert caught.value.timeout == 0.5
    assert 0.5 <= took < 0.5 + 2.0
    assert caught.value.task_id is not None
    assert client.task(diagnostics.sleep).handle(caught.value.task_id).result(timeout=20) == 2.0


def test_handle_result_takes_its_own_bound_and_can_be_called_again(client: TaskClient) -> None:
    handle = client.task(diagnostics.sleep).submit(1.5)
    with pytest.raises(TaskTimeout) as caught:
        handle.result(timeout=0.2)
    assert caught.value.timeout == 0.2 and caught.value.task_id == handle.id
    assert handle.result(timeout=20) == 1.5
    assert handle.status == "SUCCESS"
