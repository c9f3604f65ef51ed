"""Workers emit Celery task events, so Flower and `celery events` work against a deployment."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from celery import Celery

from task_client import TaskClient
from task_server.testing import wait_until

pytestmark = pytest.mark.e2e


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
