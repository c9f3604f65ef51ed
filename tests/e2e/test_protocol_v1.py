"""Celery protocol-v1 messages (gocelery, Celery 3 producers) are served as a stock worker serves them.

A v1 message has no `task` header: its body, base64 JSON, is `{"id", "task", "args", "kwargs",
"retries", "eta", "expires", ...}` (Celery's "Message protocol" page, version 1). The worker
converts it with Celery's own functions, then validates it against the contract like every other
call. Before, it refused both gocelery calls of the issue ("not a protocol-v2 triple", task id
None), so its callers waited until their own timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import amqp
import pytest

from task_client import TaskClient, TaskFailed, UnknownTask
from task_server.testing import WorkerProcess

from ..brokers import Broker
from .raw_messages import publish_amqp, push, push_v1

pytestmark = pytest.mark.e2e

GO_PRODUCER = Path(__file__).parent / "go_v1_producer" / "main.go"
#: Debian's Go libraries (golang-github-gomodule-redigo-dev, golang-github-google-uuid-dev).
DEBIAN_GOPATH = "/usr/share/gocode"


def test_a_v1_call_by_position_on_the_default_queue_gets_its_answer(
    client: TaskClient, redis_url: str, worker: WorkerProcess
) -> None:
    task_id = push_v1(redis_url, "math.add", [4, 7], {})
    assert client.add.handle(task_id).result(timeout=30) == 11


@pytest.mark.every_broker
def test_a_v1_call_gets_its_answer_on_every_broker(client: TaskClient, broker: Broker, worker: WorkerProcess) -> None:
    if broker.kind == "redis":
        task_id = push_v1(broker.url, "math.add", [4, 7], {}, queue="math")
    else:
        # AMQP: gocelery's AMQP broker publishes the same JSON body, raw, with no task header.
        task_id = str(uuid.uuid4())
        body = {"id": task_id, "task": "math.add", "args": [4, 7], "kwargs": {}, "retries": 0, "eta": None}
        message = amqp.Message(json.dumps(body), content_type="application/json", content_encoding="utf-8")
        publish_amqp(broker.url, "math", message)
    assert client.add.handle(task_id).result(timeout=30) == 11


def test_a_v1_call_by_name_gets_its_answer(client: TaskClient, redis_url: str, worker: WorkerProcess) -> None:
    task_id = push_v1(redis_url, "math.mul", [], {"x": 6, "y": 7})
    assert client.mul.handle(task_id).result(timeout=30) == 42


def test_a_v1_call_on_a_contract_queue_gets_its_answer(
    client: TaskClient, redis_url: str, worker: WorkerProcess
) -> None:
    task_id = push_v1(redis_url, "math.add", [40], {"y": 2}, queue="math")
    assert client.add.handle(task_id).result(timeout=30) == 42


def test_a_hybrid_message_v2_headers_and_a_v1_body_gets_its_answer(
    client: TaskClient, redis_url: str, worker: WorkerProcess
) -> None:
    # Celery's own worker serves this form too (`hybrid_to_proto2`).
    task_id = push(redis_url, "math.add", json.dumps({"args": [4], "kwargs": {"y": 7}}).encode(), queue="math")
    assert client.add.handle(task_id).result(timeout=30) == 11


def test_a_v1_call_with_an_eta_runs_when_it_is_due(client: TaskClient, redis_url: str, worker: WorkerProcess) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    task_id = push_v1(redis_url, "math.add", [1, 2], {}, eta=due)
    assert client.add.handle(task_id).result(timeout=30) == 3


def test_v1_arguments_that_break_the_contract_are_refused_as_invalid_arguments(
    client: TaskClient, redis_url: str, worker: WorkerProcess
) -> None:
    task_id = push_v1(redis_url, "math.add", ["a", "b"], {})
    with pytest.raises(TaskFailed) as caught:
        client.add.handle(task_id).result(timeout=30)
    assert caught.value.remote_type == "InvalidArguments"
    assert "x: Input should be a valid integer" in caught.value.remote_message


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kwargs": [1, 2]}, "Task keyword arguments must be a mapping"),
        ({"args": "4, 7"}, "args must be a list"),
        ({"retries": "many"}, "header 'retries' must be a non-negative integer"),
        ({"eta": "tomorrow"}, "header 'eta' is not an ISO 8601 date-time"),
        ({"callbacks": "junk"}, "embed field 'callbacks' must be a list of task signatures"),
    ],
    ids=["kwargs-not-a-mapping", "args-not-a-list", "retries-not-a-number", "eta-unparseable", "callbacks-junk"],
)
def test_a_malformed_v1_message_is_refused_with_its_reason(
    client: TaskClient, redis_url: str, worker: WorkerProcess, fields: dict[str, object], problem: str
) -> None:
    args, kwargs = fields.pop("args", [4, 7]), fields.pop("kwargs", {})
    task_id = push_v1(redis_url, "math.add", args, kwargs, **fields)
    with pytest.raises(TaskFailed) as caught:
        client.add.handle(task_id).result(timeout=30)
    assert caught.value.remote_type == "RefusedMessage"
    assert problem in caught.value.remote_message
    assert client.add(2, 3) == 5


def test_a_v1_call_by_a_name_no_worker_serves_fails_at_once(
    client: TaskClient, redis_url: str, worker: WorkerProcess
) -> None:
    task_id = push_v1(redis_url, "billing.charge", [1], {})
    with pytest.raises(UnknownTask):
        client.add.handle(task_id).result(timeout=30)


@pytest.fixture(scope="module")
def go_producer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go v1 producer, built in GOPATH mode with Debian's packages (no module proxy here)."""
    go = shutil.which("go")
    assert go, "go is not on PATH: this test needs Debian's golang-go and golang-github-gomodule-redigo-dev"
    gopath = tmp_path_factory.mktemp("gopath")
    source = gopath / "src" / "v1producer"
    source.mkdir(parents=True)
    shutil.copy(GO_PRODUCER, source / "main.go")
    binary = gopath / "v1producer"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:{DEBIAN_GOPATH}",
        "GOCACHE": str(gopath / "cache"),
        "GOFLAGS": "",
    }
    built = subprocess.run(
        [go, "build", "-o", str(binary), "v1producer"], cwd=source, env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, f"building the Go producer failed:\n{built.stdout}{built.stderr}"
    return binary


def go_call(binary: Path, redis_url: str, task: str, args: object, kwargs: object) -> dict[str, object]:
    done = subprocess.run(
        [str(binary), redis_url, task, json.dumps(args), json.dumps(kwargs), "20"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record: dict[str, object] = json.loads(done.stdout)
    return record


def test_a_go_producer_sending_v1_as_gocelery_does_gets_its_answers(
    go_producer: Path, redis_url: str, worker: WorkerProcess
) -> None:
    added = go_call(go_producer, redis_url, "math.add", [4, 7], {})
    assert (added["status"], added["result"]) == ("SUCCESS", 11)
    multiplied = go_call(go_producer, redis_url, "math.mul", [], {"x": 6, "y": 7})
    assert (multiplied["status"], multiplied["result"]) == ("SUCCESS", 42)
    refused = go_call(go_producer, redis_url, "math.add", ["a", "b"], {})
    assert refused["status"] == "FAILURE"
    assert isinstance(refused["result"], dict) and refused["result"]["exc_type"] == "InvalidArguments"
