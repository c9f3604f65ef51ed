"""A client in "another language": Redis and JSON only, driven by the exported AsyncAPI document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from task_server.testing import WorkerProcess

from ..conftest import REPO_ROOT

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
