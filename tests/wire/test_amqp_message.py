"""On RabbitMQ, a call's message carries the recorded wire format too: the golden fixtures' headers
and body (raw JSON on AMQP, base64 on Redis) and the same properties, into a quorum queue.

The fixtures are captures from Redis; a faster publish path on RabbitMQ (one past Celery's
`send_task` was tried for issue 18) must keep this passing.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import amqp
import pytest

from task_client import TaskClient
from task_contracts import CATALOG
from task_server.testing import RabbitMQProcess, RedisProcess

from .test_golden import EXAMPLE_CALLS, FIXTURES, _normalise_message

pytestmark = pytest.mark.e2e


def _as_redis_envelope(message: amqp.basic_message.Message, queue: str) -> dict[str, Any]:
    """The AMQP message in the shape of the Redis envelope the fixtures record (the parts AMQP has)."""
    properties = message.properties
    body = message.body if isinstance(message.body, bytes) else message.body.encode()  # py-amqp decodes utf-8
    return {
        "body": base64.b64encode(body).decode(),
        "content-encoding": properties["content_encoding"],
        "content-type": properties["content_type"],
        # A quorum queue adds its delivery count to what it hands out; the publisher did not send it.
        "headers": {k: v for k, v in properties["application_headers"].items() if k != "x-delivery-count"},
        "properties": {
            "correlation_id": properties["correlation_id"],
            "reply_to": properties["reply_to"],
            "delivery_mode": properties["delivery_mode"],
            "delivery_info": {"exchange": message.delivery_info["exchange"], "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def test_messages_on_rabbitmq_match_the_golden_fixtures(rabbitmq: RabbitMQProcess, private_redis: RedisProcess) -> None:
    vhost, broker = rabbitmq.fresh_vhost("wire")  # no worker consumes here
    connection = amqp.Connection(f"127.0.0.1:{rabbitmq.port}", userid="guest", password="guest", virtual_host=vhost)
    connection.connect()
    channel = connection.channel()
    try:
        with TaskClient(broker, private_redis.url) as client:
            for name, (args, kwargs) in EXAMPLE_CALLS.items():
                item = CATALOG.get(name)
                assert item is not None
                client.task(item).submit(*args, **kwargs)
                message = channel.basic_get(item.queue, no_ack=True)
                assert message is not None, f"no message for {name} in queue {item.queue}"
                assert channel.basic_get(item.queue, no_ack=True) is None  # exactly one
                assert message.properties["delivery_mode"] == 2  # persistent
                recorded = json.loads((FIXTURES / "messages" / f"{name}.json").read_text())
                captured = _normalise_message(_as_redis_envelope(message, item.queue))
                assert captured["headers"] == recorded["headers"], name
                assert captured["body"] == recorded["body"], name
                for key in ("content-encoding", "content-type"):
                    assert captured[key] == recorded[key], name
                for key in ("correlation_id", "reply_to", "delivery_mode", "delivery_info"):
                    assert captured["properties"][key] == recorded["properties"][key], (name, key)
            # The queue is the quorum queue the worker declares (RabbitMQ would refuse a mismatch).
            declared = rabbitmq.ctl("list_queues", "-p", vhost, "name", "type").stdout
            assert "math\tquorum" in declared
    finally:
        connection.close()
