"""Metrics on every broker: the counts and the queue depth read at scrape time (a passive queue
declaration, so the same code reads a Redis list and a RabbitMQ queue)."""

from __future__ import annotations

from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import WorkerProcess, free_port, wait_until

from ..brokers import Broker
from ..catalog import diagnostics, serving
from .test_metrics import scrape, value

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]


def test_queue_depth_and_counts_on_this_broker(private_broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    worker = WorkerProcess(
        private_broker.url,
        result_backend=private_broker.result_backend,
        concurrency=1,
        queues=["diagnostics"],
        # A window of one message (the default also counts the serving threads: 36 here, more than the
        # 20 calls below), so that calls wait on the broker for the queue depth to show.
        extra_args=["--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--prefetch-multiplier", "1"],
        logdir=str(tmp_path),
        **serving(),
    )
    with worker, TaskClient(private_broker.url, private_broker.result_backend) as client:
        worker.start()
        assert value(scrape(port), "task_server_broker_up") == 1
        # More slow calls than the worker reserves: the rest wait on the broker.
        handles = [client.task(diagnostics.sleep).submit(0.2) for _ in range(20)]
        wait_until(
            lambda: value(scrape(port), "task_server_queue_depth", queue="diagnostics") >= 1,
            15,
            "calls waiting in the diagnostics queue",
            interval=0.1,
        )
        assert [handle.result(timeout=60) for handle in handles] == [0.2] * 20
        sleep = {"contract": "diagnostics.sleep", "message": "call"}
        wait_until(
            lambda: value(scrape(port), "task_server_tasks_succeeded_total", **sleep) == 20,
            15,
            "every success to be counted",
            interval=0.2,
        )
        drained = scrape(port)
    assert value(drained, "task_server_queue_depth", queue="diagnostics") == 0
    assert value(drained, "task_server_tasks_received_total", **sleep) == 20
    assert value(drained, "task_server_task_runtime_seconds_count", **sleep) == 20
