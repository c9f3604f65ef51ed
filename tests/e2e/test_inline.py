"""Light contracts on the worker's event loop: earned by quick runs, lost for good by one slow run.

A real prefork worker serves `diagnostics.nap` (declared `cpu_bound=False`); its log says when the
contract moves to the event loop and back, and every call keeps its answer throughout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from task_client import TaskClient
from task_server._inline import QUALIFYING
from task_server.testing import RedisProcess, WorkerProcess

from ..catalog import diagnostics, serving

pytestmark = pytest.mark.e2e

ON_LOOP = "diagnostics.nap returned within 1 ms 20 times in a row; its calls run on the event loop from now on"
BACK_TO_THREADS = "on the worker's event loop; its calls run on threads from now on"


def test_quick_runs_earn_the_event_loop_and_one_slow_run_loses_it(private_redis: RedisProcess, tmp_path: Path) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving()) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            nap = client.task(diagnostics.nap)
            assert [nap(0.0) for _ in range(QUALIFYING)] == [0.0] * QUALIFYING
            assert ON_LOOP in worker.log()
            assert [nap(0.0) for _ in range(5)] == [0.0] * 5  # served on the loop
            assert nap(0.05) == 0.05  # slower than 10 ms, on the loop
            assert BACK_TO_THREADS in worker.log()
            assert [nap(0.0) for _ in range(QUALIFYING * 2)] == [0.0] * (QUALIFYING * 2)
            assert worker.log().count(ON_LOOP) == 1  # never again
            assert client.add(4, 7) == 11


def test_no_inline_keeps_every_call_on_threads(private_redis: RedisProcess, tmp_path: Path) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), extra_args=["--no-inline"], **serving()) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            nap = client.task(diagnostics.nap)
            assert [nap(0.0) for _ in range(QUALIFYING * 2)] == [0.0] * (QUALIFYING * 2)
        assert "event loop" not in worker.log()
