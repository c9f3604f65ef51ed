"""Celery protocol-v2 messages sent without Celery, as a producer that is not our client would.

On Redis a message is one LPUSH of a JSON envelope whose body is base64; on RabbitMQ it is one
AMQP publish whose body is the raw JSON and whose headers are AMQP headers. `url` picks which.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
import redis

from task_contracts.wire import AMQP_QUEUE_TYPE


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


def push(
    url: str,
    task: str,
    body: bytes,
    *,
    queue: str,
    content_type: str = "application/json",
    headers: dict[str, Any] | None = None,
) -> str:
    """Send one message for `task` on `queue`; return its task id."""
    task_id = str(uuid.uuid4())
    if is_amqp(url):
        message = amqp.Message(
            body,
            content_type=content_type,
            content_encoding="utf-8" if content_type == "application/json" else "binary",
            application_headers={"lang": "py", "task": task, "id": task_id, **(headers or {})},
            correlation_id=task_id,
            delivery_mode=2,
        )
        publish_amqp(url, queue, message)
        return task_id
    connection = redis.Redis.from_url(url)
    try:
        connection.lpush(
            queue, envelope(task, body, task_id=task_id, queue=queue, content_type=content_type, headers=headers)
        )
    finally:
        connection.close()
    return task_id


def json_body(args: list[Any], kwargs: dict[str, Any], *, ensure_ascii: bool = True) -> bytes:
    """A protocol-v2 body; `ensure_ascii=False` writes text in UTF-8 rather than as JSON's \\u escapes."""
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return json.dumps([args, kwargs, embed], ensure_ascii=ensure_ascii).encode()


def push_add_with_reply_to(url: str, reply_to: str, args: list[Any], task_id: str | None = None) -> str:
    """LPUSH a `math.add` call (this id, or a new one) whose `reply_to` property is `reply_to`; its task id."""
    task_id = task_id or str(uuid.uuid4())
    message = json.loads(envelope("math.add", json_body(args, {}), task_id=task_id, queue="math"))
    message["properties"]["reply_to"] = reply_to
    connection = redis.Redis.from_url(url)
    try:
        connection.lpush("math", json.dumps(message))
    finally:
        connection.close()
    return task_id


def push_raw(url: str, queue: str, item: bytes, **properties: Any) -> None:
    """Put anything at all on `queue`: an LPUSH of `item`, or an AMQP message with `item` as its body."""
    if is_amqp(url):
        publish_amqp(url, queue, amqp.Message(item, **properties))
        return
    connection = redis.Redis.from_url(url)
    try:
        connection.lpush(queue, item)
    finally:
        connection.close()


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in ("amqp", "amqps")


def amqp_connection(url: str) -> amqp.Connection:
    parts = urlsplit(url)
    connection = amqp.Connection(
        host=f"{parts.hostname}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=unquote(parts.path[1:]) or "/",
        connect_timeout=5,
        read_timeout=5,
        write_timeout=5,
        confirm_publish=True,
    )
    connection.connect()
    return connection


def publish_amqp(url: str, queue: str, message: amqp.Message) -> None:
    """Declare `queue` as the worker does (a durable quorum queue) and publish to it, confirmed."""
    with amqp_connection(url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-queue-type": AMQP_QUEUE_TYPE})
        channel.basic_publish(message, exchange="", routing_key=queue)


def v1_envelope(task: str, args: Any, kwargs: Any, *, task_id: str, queue: str = "celery", **fields: Any) -> str:
    """A Celery protocol-v1 message as Celery's "Message protocol" page documents it, and as gocelery
    sends it: no headers; the body, base64 JSON, holds the task name and id with the arguments."""
    body = {"id": task_id, "task": task, "args": args, "kwargs": kwargs, "retries": 0, "eta": None, "expires": None}
    body.update(fields)
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "properties": {
                "body_encoding": "base64",
                "correlation_id": str(uuid.uuid4()),
                "reply_to": str(uuid.uuid4()),
                "delivery_info": {"priority": 0, "routing_key": queue, "exchange": queue},
                "delivery_mode": 2,
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


def push_v1(url: str, task: str, args: Any, kwargs: Any, *, queue: str = "celery", **fields: Any) -> str:
    """LPUSH one protocol-v1 message on `queue` (Redis); return its task id."""
    task_id = str(uuid.uuid4())
    connection = redis.Redis.from_url(url)
    try:
        connection.lpush(queue, v1_envelope(task, args, kwargs, task_id=task_id, queue=queue, **fields))
    finally:
        connection.close()
    return task_id
