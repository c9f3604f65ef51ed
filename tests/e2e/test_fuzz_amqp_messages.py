"""Fuzzing one real worker on RabbitMQ with what any producer can publish to its queues (issue 19).

The Redis fuzz (`test_fuzz_messages.py`) generates queue items, whole envelopes; on RabbitMQ a
message is a body, properties and an AMQP header table, so here `hypothesis` generates those:
headers Celery reads, of any AMQP type (tables within tables, arrays, bytes, decimals, timestamps,
non-UTF-8 strings), tables and arrays nested past any parser's depth, timestamps no date holds,
bodies of any JSON or none, content types that are not JSON. After each batch the worker must be
alive, must answer `math.add(4, 7)` within 1 s, and every message whose id header is a string must
have a stored record (its value, or the refusal naming why). Example counts stay small: the suite
has a time budget.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import amqp
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_contracts.wire import AMQP_QUEUE_TYPE
from task_server.testing import RabbitMQProcess, WorkerProcess

from .amqp_worker import worker_on_own_vhost
from .raw_messages import amqp_connection
from .records import missing_records, seconds_until_result
from .test_fuzz_messages import HEADER_NAMES, deep, task_names
from .test_hostile_amqp_headers import Raw, deep_array, deep_table, raw_values

pytestmark = pytest.mark.e2e

#: How long the worker may take to answer `math.add(4, 7)` after a batch (issue 19).
ADD_BOUND = 1.0
#: How long a whole batch may take until every message with an id has its record.
RECORDS_BOUND = 5.0
QUEUE = "math"


@dataclass
class Item:
    """One AMQP message and the task id whose record must appear (None: no readable id)."""

    message: amqp.Message
    task_id: str | None


@dataclass
class FuzzedWorker:
    worker: WorkerProcess
    store: redis.Redis
    url: str
    connection: Any = None

    def publish(self, message: amqp.Message) -> bool:
        """Publish one message, confirmed; False if RabbitMQ refused it (it then closes the connection)."""
        if self.connection is None:
            self.connection = amqp_connection(self.url)
        try:
            with raw_values():
                self.connection.channel().basic_publish(message, exchange="", routing_key=QUEUE)
        except (amqp.exceptions.AMQPError, OSError) as error:
            self.connection = None  # closed by the broker: that message never reached a queue
            REFUSED_BY_BROKER.append(str(error))
            return False
        return True


#: Why RabbitMQ refused messages at publication, for the report of a failing run.
REFUSED_BY_BROKER: list[str] = []


@pytest.fixture(scope="module")
def fuzzed(rabbitmq: RabbitMQProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedWorker]:
    """A virtual host of the session's node, a Redis for results and a default worker, for the module."""
    with worker_on_own_vhost(rabbitmq, str(tmp_path_factory.mktemp("fuzz-amqp")), "fuzz") as node:
        with amqp_connection(node.url) as connection:
            arguments = {"x-queue-type": AMQP_QUEUE_TYPE}
            connection.channel().queue_declare(QUEUE, durable=True, auto_delete=False, arguments=arguments)
        fuzzed = FuzzedWorker(node.worker, node.store, node.url)
        yield fuzzed
        if fuzzed.connection is not None:
            fuzzed.connection.close()


# AMQP values of every type py-amqp writes, nested a little.
amqp_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False, allow_infinity=False)
    | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
)
amqp_values = st.recursive(
    amqp_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
# What py-amqp's own encoder would refuse to write, and its decoder fails on.
raw_values_strategy = st.sampled_from(
    [
        deep_table(3000),
        deep_array(3000),
        deep_table(150),
        Raw(b"T" + struct.pack(">Q", 2**63)),
        Raw(b"T" + struct.pack(">Q", 2**64 - 1)),
    ]
)
hostile_headers = st.dictionaries(
    st.sampled_from([*HEADER_NAMES, "x-anything", "x-deep", "id"]),
    amqp_values | raw_values_strategy | st.sampled_from(["not a date", "many", "\udcff", 12345, [1], {"a": 1}]),
    min_size=1,
    max_size=3,
)
valid_headers = st.fixed_dictionaries(
    {},
    optional={
        "eta": st.sampled_from([None, "2020-01-01T00:00:00+00:00"]),
        "retries": st.integers(0, 3),
        "timelimit": st.sampled_from([None, [30, None], [30, 20]]),
        "argsrepr": st.none() | st.text(max_size=8),
        "x-anything": amqp_values,
    },
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


content_types = st.sampled_from(["application/json"] * 6 + ["text/plain", "application/x-python-serialize"])


@st.composite
def items(draw: st.DrawFn) -> Item:
    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {"lang": "py", "task": draw(task_names), "id": task_id}
    headers.update(draw(hostile_headers if draw(st.booleans()) else valid_headers))
    if draw(st.integers(0, 9)) == 0:
        headers["task"] = draw(amqp_values)
    body_kind = draw(st.sampled_from(["call", "call", "call", "junk-json", "not-json", "pill", "deep-arg", "empty"]))
    if body_kind == "call":
        arguments = draw(st.lists(st.integers(-5, 5) | json_values, max_size=3))
        body = json.dumps([arguments, draw(st.dictionaries(st.sampled_from(["x", "y"]), json_values)), {}]).encode()
    elif body_kind == "junk-json":
        body = json.dumps(draw(json_values)).encode()
    elif body_kind == "not-json":
        body = draw(st.binary(max_size=16))
    elif body_kind == "pill":
        body = b"[[" + b"[" * 5000 + b"]" * 5000 + b"], {}, {}]"
    elif body_kind == "deep-arg":
        body = json.dumps([[deep(draw(st.integers(90, 400)))], {}, {}]).encode()
    else:
        body = b""
    properties: dict[str, Any] = {
        "content_type": draw(
            st.sampled_from(["application/json"] * 6 + ["text/plain", "application/x-python-serialize"])
        ),
        "content_encoding": "utf-8",
        "delivery_mode": 2,
    }
    if draw(st.integers(0, 5)) == 0:
        key = draw(st.sampled_from(["content_type", "correlation_id", "reply_to", "priority"]))
        odd = [255, 0] if key == "priority" else [b"\xff\xfe", "x" * 200]  # not UTF-8; long
        properties[key] = draw(st.sampled_from(odd))
    readable = headers.get("id")
    message = amqp.Message(body, application_headers=headers, **properties)
    return Item(message, readable if names_a_call(readable) else None)


def names_a_call(task_id: Any) -> bool:
    """Whether a record can be stored for this id: not empty, and text UTF-8 can write ("\\udcff"
    cannot: no Redis key can be named with it, and the worker drops such a message with a log line)."""
    if not isinstance(task_id, str) or not task_id:
        return False
    try:
        task_id.encode()
    except UnicodeEncodeError:
        return False
    return True


def add_answered(fuzzed: FuzzedWorker) -> float:
    """Seconds until a fresh `math.add(4, 7)` has its record (fails past `ADD_BOUND`)."""
    task_id = str(uuid.uuid4())
    message = amqp.Message(
        json.dumps([[4, 7], {}, {}]).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        application_headers={"lang": "py", "task": "math.add", "id": task_id},
    )
    started = time.monotonic()
    assert fuzzed.publish(message), REFUSED_BY_BROKER[-1:]
    return seconds_until_result(fuzzed.store, task_id, 11, started=started, bound=ADD_BOUND, worker=fuzzed.worker)


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(items(), min_size=3, max_size=8))
def test_no_batch_of_amqp_messages_stops_the_worker_or_leaves_a_caller_without_a_record(
    fuzzed: FuzzedWorker, batch: list[Item]
) -> None:
    # A message RabbitMQ refuses at publication never reaches a worker: no record is due for it.
    task_ids = [item.task_id for item in batch if fuzzed.publish(item.message) and item.task_id is not None]
    missing = missing_records(fuzzed.store, task_ids, bound=RECORDS_BOUND)
    assert fuzzed.worker.alive(), fuzzed.worker.log()[-3000:]
    unread = [item.message.properties for item in batch if item.task_id in missing]
    assert not missing, f"no record for {missing}: {repr(unread)[:2000]}\n{fuzzed.worker.log()[-3000:]}"
    add_answered(fuzzed)
    assert len(REFUSED_BY_BROKER) <= 100, REFUSED_BY_BROKER[:3]  # most messages reach the worker
