"""Several workers on one broker: each consumes the queues it was given, and clients see them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import REPO_ROOT, diagnostics, serving
from ..catalog import SPEC as TEST_CATALOG

pytestmark = pytest.mark.e2e


@pytest.fixture
def math_and_reports(private_redis: RedisProcess, tmp_path: Path) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    """Two workers of one deployment (the test catalog): one consumes `math`, the other `reports`; nobody
    `diagnostics`."""
    math = WorkerProcess(
        private_redis.url, queues=["math"], hostname="math1@127.0.0.1", logdir=str(tmp_path), **serving()
    )
    reports = WorkerProcess(
        private_redis.url, queues=["reports"], hostname="reports1@127.0.0.1", logdir=str(tmp_path), **serving()
    )
    with math, reports:
        math.start()
        reports.start()
        yield math, reports


def test_each_call_runs_on_the_worker_of_its_contracts_queue(
    private_redis: RedisProcess, math_and_reports: tuple[WorkerProcess, WorkerProcess]
) -> None:
    math, reports = math_and_reports
    with TaskClient(private_redis.url) as client:
        added = client.add.submit(2, 3)
        counted = client.count_to.submit(3, delay=0.0)
        assert added.result(timeout=10) == 5
        assert counted.result(timeout=10) == 3
    # Each worker logs every task it receives, with its id.
    assert f"math.add[{added.id}] received" in math.log()
    assert added.id not in reports.log()
    assert f"reports.count_to[{counted.id}] received" in reports.log()
    assert counted.id not in math.log()


def test_client_workers_lists_every_node_with_its_queues_and_contracts(
    private_redis: RedisProcess, math_and_reports: tuple[WorkerProcess, WorkerProcess]
) -> None:
    with TaskClient(private_redis.url) as client:
        # Replies come within the collection window; a loaded machine may need a second ask.
        found = client.workers(timeout=2.0)
        if len(found) < 2:
            found = client.workers(timeout=5.0)
    by_node = {worker.hostname: worker for worker in found}
    assert set(by_node) == {"math1@127.0.0.1", "reports1@127.0.0.1"}
    assert by_node["math1@127.0.0.1"].queues == ("math",)
    assert by_node["reports1@127.0.0.1"].queues == ("reports",)
    # Every worker implements every contract; what it serves is decided by the queues it consumes.
    assert by_node["math1@127.0.0.1"].serves("math.add", client.add.contract.fingerprint, "math")
    assert not by_node["math1@127.0.0.1"].serves("reports.count_to", client.count_to.contract.fingerprint, "reports")
    assert by_node["reports1@127.0.0.1"].serves("reports.count_to", client.count_to.contract.fingerprint, "reports")


def test_task_client_workers_command_shows_both_nodes_and_flags_the_unserved_queue(
    private_redis: RedisProcess, math_and_reports: tuple[WorkerProcess, WorkerProcess]
) -> None:
    env = {**os.environ, "TASK_BROKER_URL": private_redis.url, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "task_client", "--catalog", TEST_CATALOG, "workers", "--timeout", "3", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    report = json.loads(done.stdout)
    nodes = {worker["hostname"]: worker for worker in report["workers"]}
    assert set(nodes) == {"math1@127.0.0.1", "reports1@127.0.0.1"}
    assert nodes["math1@127.0.0.1"]["queues"] == ["math"]
    assert "math.add" in nodes["math1@127.0.0.1"]["contracts"]
    # Nobody consumes `diagnostics`: the command says so and ends with status 6 (a deployment check).
    assert done.returncode == 6
    assert "no worker consumes queue 'diagnostics'" in report["problems"]["diagnostics.sleep"]
    assert "math.add" not in report["problems"]


def _pool_processes(monitor: Celery, hostname: str) -> int | None:
    """The worker's pool size from `inspect stats`, or None when it did not reply in time."""
    replies: dict[str, Any] = monitor.control.inspect(destination=[hostname], timeout=3.0).stats() or {}
    reply = replies.get(hostname)
    return None if reply is None else len(reply.get("pool", {}).get("processes", []))


def _pool_size_once(monitor: Celery, hostname: str, condition: Callable[[int], bool], what: str) -> int:
    """The pool size reported once `condition` holds for it (a loaded machine may miss a reply)."""
    seen: list[int] = []

    def holds() -> bool:
        size = _pool_processes(monitor, hostname)
        if size is not None:
            seen.append(size)
        return size is not None and condition(size)

    wait_until(holds, 30, what, interval=0.2)
    return seen[-1]


def test_autoscale_grows_the_pool_under_a_burst(private_redis: RedisProcess, tmp_path: Path) -> None:
    worker = WorkerProcess(
        private_redis.url, queues=["diagnostics"], extra_args=["--autoscale", "3,1"], logdir=str(tmp_path), **serving()
    )
    monitor = Celery("monitor", broker=private_redis.url, set_as_current=False)
    with worker, TaskClient(private_redis.url) as client:
        worker.start()
        started = _pool_size_once(monitor, worker.hostname, lambda size: size >= 1, "the worker's pool stats")
        assert started == 1
        # Six slow calls at once: more work reserved than processes, so the autoscaler adds some.
        handles = [client.task(diagnostics.sleep).submit(1.5) for _ in range(6)]
        grown = _pool_size_once(monitor, worker.hostname, lambda size: size >= 2, "the pool to grow past 1 process")
        assert grown <= 3
        assert [handle.result(timeout=30) for handle in handles] == [1.5] * 6
    monitor.close()
