"""A producer as another language would write it: Redis commands and JSON, nothing from Celery or task-sdk.

It reads the exported `asyncapi.json` to learn the queue of a contract and the fields a worker
requires, builds the minimal protocol-v2 envelope, LPUSHes it, and reads the result record back
(subscribe to `celery-task-meta-<id>` first, then GET, so that no record is missed).
Only the standard library and the `redis` package are imported here; a test checks that.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import redis

RESULT_PREFIX = "celery-task-meta-"


def load(asyncapi_path: str | Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(asyncapi_path).read_text())
    return document


def queue_of(document: dict[str, Any], name: str) -> str:
    channel_ref = document["operations"][name]["channel"]["$ref"]  # "#/channels/<key>"
    address: str = document["channels"][channel_ref.rsplit("/", 1)[1]]["address"]
    return address


def build_message(
    document: dict[str, Any], name: str, args: list[Any], kwargs: dict[str, Any], queue: str | None = None
) -> dict[str, Any]:
    """The minimal envelope: exactly the fields the schema marks as required, and nothing else.

    `queue` defaults to the contract's; a producer that knows only the task name uses Celery's `celery`.
    """
    schemas = document["components"]["schemas"]
    envelope = schemas["celery.envelope"]
    task_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "body": base64.b64encode(json.dumps([args, kwargs, {}]).encode()).decode(),
        "content-type": envelope["properties"]["content-type"]["const"],
        "headers": {"task": name, "id": task_id},
        "properties": {
            "body_encoding": envelope["properties"]["properties"]["properties"]["body_encoding"]["const"],
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": "", "routing_key": queue or queue_of(document, name)},
        },
    }
    # Fail loudly if the documented minimum changes: this client fills exactly what is required.
    assert sorted(values) == sorted(envelope["required"])
    assert sorted(values["headers"]) == sorted(envelope["properties"]["headers"]["required"])
    properties_schema = envelope["properties"]["properties"]
    assert sorted(values["properties"]) == sorted(properties_schema["required"])
    delivery_info = properties_schema["properties"]["delivery_info"]["required"]
    assert sorted(values["properties"]["delivery_info"]) == sorted(delivery_info)
    return values


def call(
    url: str,
    document: dict[str, Any],
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float,
    queue: str | None = None,
) -> Any:
    """Publish one call (on `queue`, default the contract's); return its final result record or raise TimeoutError."""
    message = build_message(document, name, args, kwargs, queue)
    task_id = message["headers"]["id"]
    key = RESULT_PREFIX + task_id
    connection = redis.Redis.from_url(url, socket_timeout=timeout)
    pubsub = connection.pubsub()
    try:
        pubsub.subscribe(key)
        pubsub.get_message(timeout=timeout)  # the subscribe confirmation
        connection.lpush(message["properties"]["delivery_info"]["routing_key"], json.dumps(message))
        record = _final(connection.get(key))
        deadline = time.monotonic() + timeout
        while record is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{name} {task_id}: no result within {timeout} s")
            event = pubsub.get_message(timeout=left)
            if event is not None and event["type"] == "message":
                record = _final(event["data"])
        return record
    finally:
        pubsub.close()
        connection.close()


def _final(raw: bytes | None) -> Any:
    if raw is None:
        return None
    record = json.loads(raw)
    return record if record.get("status") in ("SUCCESS", "FAILURE", "REVOKED") else None
