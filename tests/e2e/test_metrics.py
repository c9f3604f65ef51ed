"""`task-server worker --metrics-port`: a real prefork worker scraped over HTTP after real calls."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from task_client import TaskClient, TaskError
from task_server.testing import RedisProcess, WorkerProcess, free_port, wait_until

from ..catalog import diagnostics, serving
from ..conftest import REPO_ROOT
from .raw_messages import envelope, json_body, push, push_raw

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_worker(private_redis: RedisProcess, tmp_path: Path) -> Iterator[tuple[WorkerProcess, int]]:
    port = free_port()
    worker = WorkerProcess(
        private_redis.url,
        concurrency=2,
        pool="prefork",
        queues=["math", "diagnostics"],
        extra_args=["--metrics-port", str(port), "--metrics-address", "127.0.0.1"],
        logdir=str(tmp_path),
        **serving(),
    )
    with worker:
        worker.start()
        yield worker, port


def test_counts_from_the_pool_processes_reach_the_endpoint(
    private_redis: RedisProcess, metrics_worker: tuple[WorkerProcess, int]
) -> None:
    _, port = metrics_worker
    before = scrape(port)
    # Every series exists from the start, at zero; the broker answered the queue-depth read.
    assert ("task_server_tasks_received_total", (("contract", "math.add"), ("message", "call"))) in before
    assert value(before, "task_server_tasks_received_total", contract="math.add", message="call") == 0
    assert value(before, "task_server_broker_up") == 1
    assert ("task_server_queue_depth", (("queue", "math"),)) in before

    with TaskClient(private_redis.url) as client:
        assert [client.add(i, 1) for i in range(3)] == [1, 2, 3]
        with pytest.raises(TaskError):
            client.div(1, 0)
        assert client.add.map([(1, 2)] * 5) == [3] * 5  # one chunk message
        # Another producer's messages: arguments the contract refuses, and a body that is not JSON.
        invalid = push(private_redis.url, "math.add", json_body(["a", 1], {}), queue="math")
        unreadable = push(private_redis.url, "math.add", b"not json", queue="math")
        # ... and an envelope kombu cannot read (refused by the transport, before Celery's handler).
        encoded = json.loads(envelope("math.add", json_body([1, 2], {}), task_id=str(uuid.uuid4()), queue="math"))
        encoded["properties"]["body_encoding"] = "rot13"
        push_raw(private_redis.url, "math", json.dumps(encoded).encode())
        for task_id in (invalid, unreadable, encoded["headers"]["id"]):
            with pytest.raises(TaskError):
                client.add.handle(task_id).result(timeout=10)

    add = {"contract": "math.add", "message": "call"}
    # The outcome is counted just after the result is stored: wait for the last ones to land.
    wait_until(
        lambda: (
            value(scrape(port), "task_server_tasks_refused_total", **add) == 3
            and value(scrape(port), "task_server_tasks_failed_total", contract="math.div", message="call") == 1
        ),
        15,
        "the refusals and the failure to be counted",
        interval=0.2,
    )
    after = scrape(port)
    assert value(after, "task_server_tasks_received_total", **add) == 6
    assert value(after, "task_server_tasks_succeeded_total", **add) == 3
    assert value(after, "task_server_tasks_failed_total", **add) == 0
    assert value(after, "task_server_tasks_retried_total", **add) == 0
    # The three calls and the invalid one ran in a pool process; the unreadable one never did.
    assert value(after, "task_server_task_runtime_seconds_count", **add) == 4
    assert value(after, "task_server_task_runtime_seconds_sum", **add) > 0
    assert value(after, "task_server_task_runtime_seconds_bucket", le="+Inf", **add) == 4
    div = {"contract": "math.div", "message": "call"}
    assert value(after, "task_server_tasks_received_total", **div) == 1
    assert value(after, "task_server_tasks_succeeded_total", **div) == 0
    chunk = {"contract": "math.add", "message": "chunk"}
    assert value(after, "task_server_tasks_received_total", **chunk) == 1
    assert value(after, "task_server_tasks_succeeded_total", **chunk) == 1
    assert value(after, "task_server_tasks_received_total", contract="math.mul", message="call") == 0
    # The documented dashboard queries only series this worker serves.
    dashboard = json.loads((REPO_ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"task_server_\w+", target["expr"])
    }
    assert queried and queried <= {name for name, _ in after}


def test_queue_depth_is_read_from_the_broker_at_each_scrape(
    private_redis: RedisProcess, metrics_worker: tuple[WorkerProcess, int]
) -> None:
    _, port = metrics_worker
    with TaskClient(private_redis.url) as client:
        # More slow calls than two processes reserve: the rest wait in the `diagnostics` list.
        handles = [client.task(diagnostics.sleep).submit(0.2) for _ in range(30)]
        wait_until(
            lambda: value(scrape(port), "task_server_queue_depth", queue="diagnostics") >= 1,
            10,
            "calls waiting in the diagnostics queue",
            interval=0.1,
        )
        assert [handle.result(timeout=60) for handle in handles] == [0.2] * 30
    drained = scrape(port)
    assert value(drained, "task_server_queue_depth", queue="diagnostics") == 0
    assert value(drained, "task_server_tasks_succeeded_total", contract="diagnostics.sleep", message="call") == 30


def test_a_frozen_broker_is_reported_not_waited_for(
    private_redis: RedisProcess, metrics_worker: tuple[WorkerProcess, int]
) -> None:
    _, port = metrics_worker
    private_redis.freeze()
    try:
        samples = scrape(port)  # bounded by urlopen's 10 s; the read itself by 1 s per step
    finally:
        private_redis.thaw()
    assert value(samples, "task_server_broker_up") == 0
    assert ("task_server_queue_depth", (("queue", "math"),)) not in samples
    assert ("task_server_tasks_received_total", (("contract", "math.add"), ("message", "call"))) in samples


def test_a_task_run_again_after_its_pool_process_died_counts_as_retried(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    marks = tmp_path / "diagnostics"
    marks.mkdir()
    port = free_port()
    worker = WorkerProcess(
        private_redis.url,
        concurrency=1,
        queues=["diagnostics"],
        extra_args=["--metrics-port", str(port), "--metrics-address", "127.0.0.1"],
        logdir=str(tmp_path),
        **serving({"TASK_DIAGNOSTICS_DIR": str(marks)}),
    )
    starts = marks / "killed.starts"

    def started(count: int) -> bool:
        return starts.exists() and len(starts.read_text().split()) >= count

    with worker, TaskClient(private_redis.url) as client, ThreadPoolExecutor(max_workers=1) as pool:
        worker.start()
        call = pool.submit(client.task(diagnostics.hold).with_options(timeout=60), "killed", 25.0)
        wait_until(lambda: started(1), 30, "the first start")
        (child,) = worker.children()
        os.kill(child, signal.SIGKILL)  # requeued at once, started again in a new pool process
        wait_until(lambda: started(2), 30, "the second start")
        (marks / "killed.release").touch()
        assert call.result(timeout=60) == 2
        hold = {"contract": "diagnostics.hold", "message": "call"}
        wait_until(
            lambda: value(scrape(port), "task_server_tasks_succeeded_total", **hold) == 1,
            15,
            "the success to be counted",
            interval=0.2,
        )
        samples = scrape(port)
    assert value(samples, "task_server_tasks_received_total", **hold) == 2
    assert value(samples, "task_server_tasks_retried_total", **hold) == 1
    assert value(samples, "task_server_tasks_failed_total", **hold) == 0
    assert value(samples, "task_server_tasks_refused_total", **hold) == 0
