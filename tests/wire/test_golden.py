"""Golden wire fixtures: what the client really publishes and what the backend really stores.

Each fixture under tests/fixtures/wire/ is a real capture with only the legitimately varying
values (ids, origin, reply queue, delivery tag, dates, traceback) replaced by placeholders.
Any other drift in the wire format fails here. After an intended change, rewrite them with
`TASK_UPDATE_WIRE_FIXTURES=1 pytest tests/wire/test_golden.py` and review the diff.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import redis

from task_client import TaskClient, TaskFailed
from task_contracts import CATALOG, asyncapi_document
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..conftest import REPO_ROOT
from .schemas import component_validator

pytestmark = pytest.mark.e2e

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "wire"
UPDATE = os.environ.get("TASK_UPDATE_WIRE_FIXTURES") == "1"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

#: One call per example task, with the arguments its golden message carries.
EXAMPLE_CALLS: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "math.add": ([4, 7], {}),
    "math.mul": ([6, 7], {}),
    "math.xsum": ([[1, 2, 3]], {}),
    "math.div": ([7, 2], {}),
    "math.stats": ([[1.5, 2.5]], {}),
    "reports.count_to": ([3], {"delay": 0.5}),
}


def test_every_catalog_contract_has_an_example_call() -> None:
    assert set(EXAMPLE_CALLS) == set(CATALOG.names())


def _compare(name: str, captured: Any) -> None:
    path = FIXTURES / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(captured, indent=2) + "\n")
    assert path.is_file(), f"{path} is missing; create it with TASK_UPDATE_WIRE_FIXTURES=1"
    assert captured == json.loads(path.read_text()), f"the wire format drifted from {path}"


def _normalise_message(message: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(message))
    headers, properties = out["headers"], out["properties"]
    task_id = headers["id"]
    assert UUID.match(task_id)
    # The same id names the task, its root and the reply correlation: part of the format.
    assert headers["root_id"] == properties["correlation_id"] == task_id
    assert re.match(r"^gen\d+@.+$", headers["origin"])
    assert UUID.match(properties["delivery_tag"])
    assert re.match(r"^task-client-[0-9a-f]{32}$", properties["reply_to"])
    headers["id"] = headers["root_id"] = properties["correlation_id"] = "<task id>"
    headers["origin"] = "<gen pid @ hostname>"
    assert re.match(r"^[0-9a-f]{64}$", headers["cancel_hash"])
    headers["cancel_hash"] = "<sha-256 of the call's cancel token>"
    properties["delivery_tag"] = "<uuid per message>"
    properties["reply_to"] = "<reply channel per client>"
    return out


@pytest.fixture
def captured_messages(private_redis: RedisProcess) -> dict[str, dict[str, Any]]:
    """The raw envelope of each example call, read back from a Redis no worker consumes."""
    connection = redis.Redis.from_url(private_redis.url)
    captured = {}
    with TaskClient(private_redis.url) as client:
        for name, (args, kwargs) in EXAMPLE_CALLS.items():
            item = CATALOG.get(name)
            assert item is not None
            client.task(item).submit(*args, **kwargs)
            (raw,) = connection.lrange(item.queue, 0, -1)
            connection.delete(item.queue)
            captured[name] = json.loads(raw)
    connection.close()
    return captured


def test_published_messages_match_the_golden_fixtures(captured_messages: dict[str, dict[str, Any]]) -> None:
    for name, message in captured_messages.items():
        _compare(f"messages/{name}.json", _normalise_message(message))
        args, kwargs = EXAMPLE_CALLS[name]
        item = CATALOG.get(name)
        assert item is not None
        assert json.loads(base64.b64decode(message["body"]))[:2] == list(item.encode_arguments(args, kwargs))


def test_captured_messages_satisfy_the_exported_schemas(captured_messages: dict[str, dict[str, Any]]) -> None:
    document = asyncapi_document(CATALOG)
    for name, message in captured_messages.items():
        envelope = component_validator(document, f"{name}.envelope")
        assert [e.message for e in envelope.iter_errors(message)] == []
        body = json.loads(base64.b64decode(message["body"]))
        assert [e.message for e in component_validator(document, f"{name}.body").iter_errors(body)] == []
        assert not envelope.is_valid({**message, "headers": {**message["headers"], "task": "math.other"}})
        assert not component_validator(document, f"{name}.body").is_valid([["wrong", "args", "too many"], {}, {}])


def _normalise_record(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    assert UUID.match(out["task_id"])
    out["task_id"] = "<task id>"
    if out.get("date_done") is not None:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$", out["date_done"])
        out["date_done"] = "<ISO 8601 UTC>"
    if out.get("traceback") is not None:
        assert out["traceback"].startswith("Traceback (most recent call last)")
        out["traceback"] = "<Python traceback text>"
    return out


def test_stored_result_records_match_the_golden_fixtures(redis_url: str, worker: WorkerProcess) -> None:
    document = asyncapi_document(CATALOG)
    record_schema = component_validator(document, "celery.result")
    connection = redis.Redis.from_url(redis_url)

    def stored(task_id: str) -> dict[str, Any]:
        raw = connection.get("celery-task-meta-" + task_id)
        assert raw is not None
        record: dict[str, Any] = json.loads(raw)
        assert [e.message for e in record_schema.iter_errors(record)] == []
        return record

    with TaskClient(redis_url) as client:
        success = client.add.submit(4, 7)
        assert success.result(timeout=30) == 11
        failure = client.div.submit(1, 0)
        with pytest.raises(TaskFailed):
            failure.result(timeout=30)
        running = client.count_to.submit(3, delay=0.5)
        wait_until(lambda: running.status == "PROGRESS", 30, "a PROGRESS record")
        progress = stored(running.id)
        assert running.result(timeout=30) == 3
    try:
        _compare("results/success.json", _normalise_record(stored(success.id)))
        _compare("results/failure.json", _normalise_record(stored(failure.id)))
        report = progress["result"]
        assert 1 <= report["done"] <= report["total"] == 3 and report["message"] == f"counted to {report['done']}"
        report["done"], report["message"] = "<1..3>", "counted to <done>"
        _compare("results/progress.json", _normalise_record(progress))
    finally:
        connection.close()


def test_fixture_files_are_all_checked() -> None:
    expected = {f"messages/{name}.json" for name in EXAMPLE_CALLS}
    expected |= {"results/success.json", "results/failure.json", "results/progress.json"}
    present = {str(path.relative_to(FIXTURES)) for path in Path(FIXTURES).rglob("*.json")}
    assert present == expected
