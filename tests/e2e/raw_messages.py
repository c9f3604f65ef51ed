"""Celery protocol-v2 envelopes pushed with a raw LPUSH, as a producer that is not our client would."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import redis


def envelope(
    task: str,
    body: bytes,
    *,
    task_id: str,
    queue: str,
    content_type: str = "application/json",
    headers: dict[str, Any] | None = None,
) -> str:
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8" if content_type == "application/json" else "binary",
            "content-type": content_type,
            "headers": {"lang": "py", "task": task, "id": task_id, **(headers or {})},
            "properties": {
                "correlation_id": task_id,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


def push(redis_url: str, task: str, body: bytes, *, queue: str, **options: Any) -> str:
    """LPUSH one message on `queue`; return its task id."""
    task_id = str(uuid.uuid4())
    connection = redis.Redis.from_url(redis_url)
    try:
        connection.lpush(queue, envelope(task, body, task_id=task_id, queue=queue, **options))
    finally:
        connection.close()
    return task_id


def json_body(args: list[Any], kwargs: dict[str, Any]) -> bytes:
    return json.dumps([args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()


def push_raw(redis_url: str, queue: str, item: bytes) -> None:
    """LPUSH anything at all on `queue`."""
    connection = redis.Redis.from_url(redis_url)
    try:
        connection.lpush(queue, item)
    finally:
        connection.close()
