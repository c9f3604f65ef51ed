"""Both command lines on each broker: RabbitMQ (with Redis for results) as well as Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from task_server.testing import WorkerProcess

from ..brokers import Broker
from ..conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]


def task_client(broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "TASK_BROKER_URL": broker.url, "TASK_RESULT_BACKEND": broker.result_backend}
    argv = [sys.executable, "-m", "task_client", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=environment)


def test_call_and_workers_from_the_command_line(broker: Broker, worker: WorkerProcess) -> None:
    done = task_client(broker, "call", "add", "4", "7")
    assert (done.returncode, done.stdout) == (0, "11\n"), done.stderr
    report = json.loads(task_client(broker, "workers", "--timeout", "2", "--json").stdout)
    assert worker.hostname in [item["hostname"] for item in report["workers"]]
    assert report["problems"] == {}


@pytest.mark.parametrize("command", [["task_client", "call", "add", "1", "2"], ["task_server", "worker"]])
def test_rabbitmq_without_a_result_backend_is_a_usage_error(command: list[str]) -> None:
    environment = {**os.environ, "TASK_BROKER_URL": "amqp://guest:s3cret@127.0.0.1:9//"}
    environment.pop("TASK_RESULT_BACKEND", None)
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is RabbitMQ, which cannot hold results: set the result backend to a Redis URL" in done.stderr
    assert "s3cret" not in done.stderr
