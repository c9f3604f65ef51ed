"""Workers started with `--events` emit Celery task events, so Flower and `celery events` work."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(private_redis: RedisProcess, tmp_path: Path) -> Iterator[TaskClient]:
    """A client of a worker of its own, started with `--events` (events are off by default)."""
    url = private_redis.url
    with WorkerProcess(url, concurrency=1, extra_args=["--events"], logdir=str(tmp_path)) as worker:
        worker.start()
        with TaskClient(url) as task_client:
            yield task_client


@pytest.fixture
def redis_url(private_redis: RedisProcess) -> str:
    return private_redis.url


def test_a_call_produces_received_started_and_succeeded_events(redis_url: str, client: TaskClient) -> None:
    monitor = Celery("monitor", broker=redis_url, set_as_current=False)
    events: list[dict[str, Any]] = []
    with monitor.connection_for_read() as connection:
        receiver = monitor.events.Receiver(connection, handlers={"*": events.append})
        listening = threading.Thread(target=receiver.capture, kwargs={"limit": None, "timeout": None}, daemon=True)
        listening.start()
        try:
            # A heartbeat proves the receiver is subscribed; events sent before that would be missed.
            wait_until(lambda: any(e["type"] == "worker-heartbeat" for e in events), 30, "a worker heartbeat")
            handle = client.add.submit(2, 3)
            assert handle.result(timeout=10) == 5

            def task_events() -> set[str]:
                return {e["type"] for e in list(events) if e.get("uuid") == handle.id}

            wait_until(lambda: {"task-received", "task-started", "task-succeeded"} <= task_events(), 30, "events")
            received = next(e for e in events if e.get("uuid") == handle.id and e["type"] == "task-received")
            assert received["name"] == "math.add"
            succeeded = next(e for e in events if e.get("uuid") == handle.id and e["type"] == "task-succeeded")
            assert succeeded["result"] == "5"
        finally:
            receiver.should_stop = True
            listening.join(timeout=10)
    monitor.close()
    assert not listening.is_alive()
