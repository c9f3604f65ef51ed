"""AMQP headers no Celery producer sends: tables within tables, arrays, bytes, decimals, timestamps,
huge values, keys and strings that are not UTF-8 (issue 19). (An unknown field type never reaches a
worker: RabbitMQ closes the publisher's connection with INTERNAL_ERROR.)

On RabbitMQ the headers are an AMQP table, which py-amqp decodes inside the worker's event loop
before kombu or Celery see the message. A table nested thousands deep, a timestamp no `datetime`
holds, or an unknown field type raised there: the worker stopped, and RabbitMQ handed the message to
the next worker. Now each message with a readable id gets a stored record (its value, or a
`RefusedMessage` naming what could not be read), one without is acknowledged and logged, and the
worker keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import amqp
import amqp.serialization
import pytest
import redis

from task_client import TaskClient
from task_server.testing import RabbitMQProcess, WorkerProcess, wait_until

from .amqp_worker import worker_on_own_vhost
from .raw_messages import json_body, publish_amqp

pytestmark = pytest.mark.e2e

BOUND = 30.0  # generous: the machine is shared; a record normally comes within milliseconds


class Raw(bytes):
    """A header value written as these exact bytes (its type letter first): what a hostile
    producer writes, which py-amqp's encoder would refuse to."""


@contextlib.contextmanager
def raw_values() -> Iterator[None]:
    original = amqp.serialization._write_item

    def write_item(value: Any, write: Any, bits: Any) -> None:
        if isinstance(value, Raw):
            write(bytes(value))
        else:
            original(value, write, bits)

    amqp.serialization._write_item = write_item
    try:
        yield
    finally:
        amqp.serialization._write_item = original


def table(entries: bytes) -> bytes:
    return b"F" + struct.pack(">I", len(entries)) + entries


def entry(key: bytes, value: bytes) -> bytes:
    return struct.pack(">B", len(key)) + key + value


def deep_table(depth: int) -> Raw:
    value = b"V"
    for _ in range(depth):
        value = table(entry(b"t", value))
    return Raw(value)


def deep_array(depth: int) -> Raw:
    value = b"V"
    for _ in range(depth):
        value = b"A" + struct.pack(">I", len(value)) + value
    return Raw(value)


@dataclass
class Node:
    url: str
    store: redis.Redis
    worker: WorkerProcess
    client: TaskClient


@pytest.fixture(scope="module")
def node(rabbitmq: RabbitMQProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A virtual host of the session's RabbitMQ node, a Redis for results and a default worker."""
    with (
        worker_on_own_vhost(rabbitmq, str(tmp_path_factory.mktemp("amqp-headers")), "headers") as served,
        TaskClient(served.url, served.results_url) as client,
    ):
        yield Node(served.url, served.store, served.worker, client)


def send(node: Node, headers: dict[str, Any], **properties: Any) -> str:
    task_id = str(uuid.uuid4())
    application_headers = {"lang": "py", "task": "math.add", "id": task_id, **headers}
    message = amqp.Message(
        json_body([1, 2], {}),
        **{"content_type": "application/json", "content_encoding": "utf-8", **properties},
        application_headers=application_headers,
        correlation_id=task_id,
        delivery_mode=2,
    )
    with raw_values():
        publish_amqp(node.url, "math", message)
    return task_id


def record(node: Node, task_id: str) -> dict[str, Any]:
    key = f"celery-task-meta-{task_id}"
    wait_until(lambda: node.store.exists(key), BOUND, f"a record for {task_id}\n{node.worker.log()[-3000:]}")
    found: dict[str, Any] = json.loads(node.store.get(key) or b"{}")
    return found


def still_serving(node: Node) -> None:
    assert node.worker.alive(), node.worker.log()[-3000:]
    assert node.client.add.with_options(timeout=BOUND)(4, 7) == 11


UNREADABLE = "message headers could not be read"


@pytest.mark.parametrize(
    ("headers", "refusal"),
    [
        ({"x-deep": deep_table(5000)}, f"{UNREADABLE}: x-deep.t.t"),  # was RecursionError: the worker stopped
        ({"x-deep": deep_array(5000)}, f"{UNREADABLE}: x-deep[0][0]"),
        ({"x-when": Raw(b"T" + struct.pack(">Q", 2**63))}, f"{UNREADABLE}: x-when: timestamp"),
        ({"x-nested": {"a": [Raw(b"T" + struct.pack(">Q", 2**64 - 1))]}}, f"{UNREADABLE}: x-nested.a[0]: timestamp"),
        (
            {"retries": {"table": {"within": [1, [2, {"a": b"\x00"}]]}}},
            "header 'retries' must be a non-negative integer",
        ),
        ({"eta": datetime(2030, 1, 1)}, "header 'eta' must be an ISO 8601 date-time string"),
        ({"timelimit": [Decimal("1.5"), b"\xff"]}, "header 'timelimit' must be [hard, soft] seconds"),
        ({"argsrepr": "x" * 100_000}, None),  # huge, but a string: served
        ({"x-big": ["y" * 1000] * 100, "x-bytes": b"\xff\x00", "x-dec": Decimal("1.25")}, None),
        ({"x-\udcff-not-utf8": "\udcff"}, None),  # a key and a value that are not UTF-8: served
        ({"stamps": {"nested": {"deeper": [1, 2, 3]}}}, None),
    ],
    ids=[
        "table-5000-deep",
        "array-5000-deep",
        "timestamp-past-any-date",
        "bad-timestamp-in-a-nested-array",
        "tables-in-a-counter",
        "timestamp-as-eta",
        "decimal-and-bytes-time-limits",
        "huge-string",
        "arrays-bytes-decimals",
        "not-utf8",
        "nested-stamps",
    ],
)
def test_a_hostile_amqp_header_gets_a_record_and_the_worker_keeps_serving(
    node: Node, headers: dict[str, Any], refusal: str | None
) -> None:
    found = record(node, send(node, headers))
    if refusal is None:
        assert (found["status"], found["result"]) == ("SUCCESS", 3), found
    else:
        assert found["status"] == "FAILURE" and found["result"]["exc_type"] == "RefusedMessage", found
        assert refusal in found["result"]["exc_message"][0], found
    still_serving(node)


def test_a_property_that_is_not_utf8_is_refused(node: Node) -> None:
    found = record(node, send(node, {}, content_type=b"application/\xff"))
    assert found["result"]["exc_type"] == "RefusedMessage", found
    assert "content type None is not accepted" in found["result"]["exc_message"][0], found
    still_serving(node)


def test_a_message_whose_id_cannot_be_read_is_dropped_with_a_log_line(node: Node) -> None:
    message = amqp.Message(
        json_body([1, 2], {}),
        content_type="application/json",
        application_headers={"lang": "py", "task": "math.add", "id": deep_table(5000)},
        delivery_mode=2,
    )
    with raw_values():
        publish_amqp(node.url, "math", message)
    logged = "refused a message for math.add (task id unreadable): message headers could not be read: id.t.t"
    wait_until(lambda: logged in node.worker.log(), BOUND, f"the drop to be logged\n{node.worker.log()[-2000:]}")
    still_serving(node)


def test_a_message_whose_id_is_not_utf8_is_dropped_with_a_log_line(node: Node) -> None:
    # py-amqp reads a lone surrogate back as one ('\udcff'), and no Redis key can be named with it.
    # Before, each such message logged two errors from the event loop ("failure could not be handled").
    message = amqp.Message(
        json_body([1, 2], {}),
        content_type="application/json",
        application_headers={"lang": "py", "task": "math.add", "id": "\udcff"},
        delivery_mode=2,
    )
    publish_amqp(node.url, "math", message)
    logged = "refused a message for math.add (task id unreadable): header 'id' must be a non-empty string of UTF-8 text"
    wait_until(lambda: logged in node.worker.log(), BOUND, f"the drop to be logged\n{node.worker.log()[-2000:]}")
    assert "could not be handled" not in node.worker.log()
    still_serving(node)


def test_a_body_its_content_encoding_reads_as_a_lone_surrogate_gets_a_record(node: Node) -> None:
    # py-amqp decodes a body by its content_encoding: "unicode_escape" turns the JSON escape \udcff
    # into a lone surrogate in a str. json.loads reads such a str (its arguments then refused);
    # pydantic-core's from_json raised TypeError for it: the message was refused as unreadable.
    task_id = str(uuid.uuid4())
    message = amqp.Message(
        json_body(["\udcff"], {}),
        content_type="application/json",
        content_encoding="unicode_escape",
        application_headers={"lang": "py", "task": "math.add", "id": task_id},
        correlation_id=task_id,
        delivery_mode=2,
    )
    publish_amqp(node.url, "math", message)
    stored = record(node, task_id)
    assert stored["status"] == "FAILURE" and stored["result"]["exc_type"] == "InvalidArguments", stored
    still_serving(node)
