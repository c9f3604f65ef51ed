"""A client in "another language": Redis and JSON only, driven by the exported AsyncAPI document."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from task_contracts import CATALOG, asyncapi_document
from task_server.testing import WorkerProcess, wait_until

from ..conftest import REPO_ROOT
from .schemas import component_validator

pytestmark = pytest.mark.e2e

CALLS = [
    ("math.add", [4, 7], {}),
    ("math.xsum", [], {"numbers": [1, 2, 3]}),
    ("math.add", ["four", 7], {}),
    ("math.div", [1, 0], {}),
]

PROGRAM = """
import json, sys
from tests.wire import foreign_client as client
url, asyncapi, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
document = client.load(asyncapi)
records = [client.call(url, document, name, args, kwargs, timeout=30) for name, args, kwargs in calls]
sdk = {'celery', 'kombu', 'task_client', 'task_server', 'task_contracts'}
foreign = sorted({m.split('.')[0] for m in sys.modules} & sdk)
print(json.dumps({"records": records, "foreign_modules": foreign}))
"""


def test_a_redis_and_json_client_calls_tasks_from_the_exported_document(
    redis_url: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    exported = subprocess.run(
        [sys.executable, "-m", "task_contracts._cli", "export", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, redis_url, str(tmp_path / "asyncapi.json"), json.dumps(CALLS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["foreign_modules"] == []  # no Celery, kombu or task-sdk code on this path
    add, xsum, invalid, division = output["records"]
    assert (add["status"], add["result"]) == ("SUCCESS", 11)
    assert (xsum["status"], xsum["result"]) == ("SUCCESS", 6)
    assert invalid["status"] == "FAILURE"
    assert invalid["result"]["exc_type"] == "InvalidArguments"
    assert "x: Input should be a valid integer" in json.dumps(invalid["result"]["exc_message"])
    assert division["status"] == "FAILURE" and division["result"]["exc_type"] == "ZeroDivisionError"


def test_the_minimal_message_in_the_wire_docs_is_accepted(redis_url: str, worker: WorkerProcess) -> None:
    page = (REPO_ROOT / "docs" / "wire.md").read_text()
    section = page.split("The smallest envelope a Celery 5.7 worker accepts", 1)[1]
    message = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    document = asyncapi_document(CATALOG)
    assert component_validator(document, "math.add.envelope").is_valid(message)
    message["headers"]["id"] = task_id = str(uuid.uuid4())  # fresh ids, as every producer must
    message["properties"]["delivery_tag"] = str(uuid.uuid4())
    connection = redis.Redis.from_url(redis_url)
    try:
        connection.lpush("math", json.dumps(message))
        wait_until(lambda: connection.get("celery-task-meta-" + task_id) is not None, 30, "the documented call")
        record = json.loads(connection.get("celery-task-meta-" + task_id) or b"{}")
    finally:
        connection.close()
    assert (record["status"], record["result"]) == ("SUCCESS", 11)
