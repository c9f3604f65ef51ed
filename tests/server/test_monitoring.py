"""Workers send no task events by default, as in Celery (three PUBLISHes per call); `--events` turns them on."""

from __future__ import annotations

import subprocess
import sys

from task_contracts import CATALOG, resolve_urls
from task_server import WorkerSettings
from task_server._app import celery_config


def test_task_events_are_off_by_default_and_can_be_turned_on() -> None:
    urls = resolve_urls("redis://127.0.0.1:6379/0")
    assert celery_config(WorkerSettings(urls=urls), CATALOG)["worker_send_task_events"] is False
    monitored = WorkerSettings(urls=urls, extra_celery_config={"worker_send_task_events": True})
    assert celery_config(monitored, CATALOG)["worker_send_task_events"] is True


def test_worker_help_documents_the_events_switch() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "task_server", "worker", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "--events / --no-events" in done.stdout and "Flower" in done.stdout
