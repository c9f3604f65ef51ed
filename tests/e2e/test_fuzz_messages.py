"""Fuzzing one real worker with what any producer can put on its queues.

`hypothesis` generates batches of queue items: protocol-v2 envelopes and protocol-v1 bodies,
valid and hostile (headers, embeds, properties and bodies of any JSON type, unparseable dates,
unknown encodings, poison pills nested thousands deep, bytes that are no JSON at all). After each
batch the worker must be alive, must answer `math.add(4, 7)` within 1 s, and every item whose task
id can be read must have a stored record (a result, or the refusal naming why). Bookkeeping
entries and Redis faults are fuzzed elsewhere.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_server.testing import RedisProcess, WorkerProcess

from ..catalog import serving
from .records import missing_records, seconds_until_result

pytestmark = pytest.mark.e2e

#: How long the worker may take to answer `math.add(4, 7)` after a batch (issue 19).
ADD_BOUND = 1.0
#: How long a whole batch may take until every readable item has its record. Issue 19 asks for 1 s
#: per message; measured here, the slowest batch of a run took 0.31 s at a load average of 19.
RECORDS_BOUND = 3.0
#: Queues the worker consumes: a contract's and Celery's default one.
QUEUES = ("math", "celery")


@dataclass
class Item:
    """One queue item and the task id whose record must appear (None: no readable id)."""

    queue: str
    raw: bytes
    task_id: str | None


@dataclass
class FuzzedWorker:
    worker: WorkerProcess
    broker: redis.Redis


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedWorker]:
    """One Redis and one default worker for the whole module (its queues see only fuzzed items)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    with RedisProcess(workdir=str(workdir)) as broker:
        broker.start()
        with WorkerProcess(broker.url, result_backend=broker.url, logdir=str(workdir), **serving()) as worker:
            worker.start()
            connection = redis.Redis.from_url(broker.url, socket_timeout=10)
            try:
                yield FuzzedWorker(worker, connection)
            finally:
                connection.close()


# JSON values of every type, nested a little; `deep` makes poison pills.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def deep(depth: int) -> Any:
    return json.loads("[" * depth + "]" * depth)


# Header values a producer may send: well-typed ones (which must then be served) and anything at all.
valid_headers = st.fixed_dictionaries(
    {},
    optional={
        "lang": st.sampled_from(["py", "go", "js", None]),
        "eta": st.sampled_from([None, "2020-01-01T00:00:00+00:00", "2020-01-01T00:00:00"]),
        "expires": st.sampled_from([None, "2999-01-01T00:00:00+00:00"]),
        "retries": st.integers(0, 3),
        "timelimit": st.sampled_from([None, [None, None], [30, None], [30, 20]]),
        "root_id": st.none() | st.just(str(uuid.uuid4())),
        "parent_id": st.none(),
        "group": st.none(),
        "argsrepr": st.none() | st.text(max_size=8),
        "origin": st.none() | st.text(max_size=8),
        "ignore_result": st.sampled_from([None, False]),
        "x-anything": json_values,
    },
)
HEADER_NAMES = (
    *("eta", "expires", "retries", "timelimit", "root_id", "group", "group_index", "shadow", "ignore_result"),
    *("stamped_headers", "stamps", "argsrepr", "replaced_task_nesting", "meth", "lang"),
)
hostile_headers = st.dictionaries(
    st.sampled_from(HEADER_NAMES),
    json_values | st.sampled_from(["not a date", "many", "2026-13-45", 12345, [1], {"a": 1}, True, -1]),
    min_size=1,
    max_size=3,
)
task_names = st.sampled_from(["math.add", "math.mul", "math.xsum", "math.add:chunk", "billing.charge"])
hostile_task_names = json_values.filter(lambda value: not isinstance(value, str)) | task_names
embeds = st.none() | st.just({}) | st.fixed_dictionaries({"callbacks": st.none(), "errbacks": st.none()})
hostile_embeds = st.dictionaries(
    st.sampled_from(["callbacks", "errbacks", "chain", "chord", "group_index"]), json_values, min_size=1, max_size=2
)
arguments = st.lists(st.integers(-5, 5) | st.text(max_size=3) | json_values, max_size=3)
keyword_arguments = st.dictionaries(st.sampled_from(["x", "y", "values", "z"]), json_values, max_size=2)


@st.composite
def v2_items(draw: st.DrawFn) -> Item:
    task_id: str | None = str(uuid.uuid4())
    hostile = draw(st.booleans())
    headers: dict[str, Any] = {"task": draw(task_names), "id": task_id}
    headers.update(draw(hostile_headers if hostile else valid_headers))
    if draw(st.integers(0, 9)) == 0:
        headers["task"] = draw(hostile_task_names)
    body_kind = draw(st.sampled_from(["call", "call", "call", "junk-json", "not-json", "pill", "deep-arg"]))
    embed = draw(hostile_embeds if draw(st.integers(0, 4)) == 0 else embeds)
    body: bytes
    if body_kind == "call":
        body = json.dumps([draw(arguments), draw(keyword_arguments), embed]).encode()
    elif body_kind == "junk-json":
        body = json.dumps(draw(json_values)).encode()
    elif body_kind == "not-json":
        body = draw(st.binary(max_size=16))
    elif body_kind == "pill":
        body = b"[[" + b"[" * 5000 + b"]" * 5000 + b"], {}, {}]"
    else:
        body = json.dumps([[deep(draw(st.integers(90, 400)))], {}, {}]).encode()
    properties: dict[str, Any] = {
        "correlation_id": task_id,
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": "math"},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    encoded = base64.b64encode(body).decode()
    mutation = draw(st.sampled_from(["none"] * 6 + ["encoding", "not-base64", "content-type", "properties", "deep"]))
    envelope: dict[str, Any] = {
        "body": encoded,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": properties,
    }
    if mutation == "encoding":
        properties["body_encoding"] = draw(st.sampled_from(["rot13", "utf-16", None, 5]))
        if properties["body_encoding"] is None:  # then the body is taken as it is: send the JSON text
            envelope["body"] = body.decode("utf-8", "replace")
    elif mutation == "not-base64":
        envelope["body"] = "!!" + encoded
    elif mutation == "content-type":
        envelope["content-type"] = draw(st.sampled_from(["application/x-python-serialize", "text/plain", None, 7]))
    elif mutation == "properties":
        key = draw(st.sampled_from(["delivery_info", "delivery_tag", "priority", "reply_to", "correlation_id"]))
        properties[key] = draw(json_values)
    elif mutation == "deep":
        headers["x-deep"] = deep(draw(st.integers(101, 500)))
    raw = json.dumps(envelope).encode()
    if mutation == "deep" and draw(st.booleans()):
        raw = raw.replace(b'"x-deep": [', b'"x-deep": [' + b"[" * 5000, 1).replace(b"]]", b"]]" + b"]" * 5000, 1)
        task_id = None  # no JSON parser reads this envelope: no id can be read
    return Item("math", raw, task_id)


@st.composite
def v1_items(draw: st.DrawFn) -> Item:
    task_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "id": task_id,
        "task": draw(task_names),
        "args": draw(arguments),
        "kwargs": draw(keyword_arguments),
        "retries": 0,
        "eta": None,
        "expires": None,
    }
    if draw(st.booleans()):  # hostile: any field of any type, or a field missing
        field = draw(st.sampled_from(["task", "args", "kwargs", "retries", "eta", "expires", "callbacks", "taskset"]))
        if draw(st.booleans()):
            body[field] = draw(json_values | st.sampled_from(["many", "not a date", [1]]))
        else:
            body.pop(field, None)
    envelope = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "properties": {
            "body_encoding": "base64",
            "correlation_id": str(uuid.uuid4()),
            "reply_to": str(uuid.uuid4()),
            "delivery_info": {"priority": 0, "routing_key": "celery", "exchange": "celery"},
            "delivery_mode": 2,
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return Item("celery", json.dumps(envelope).encode(), task_id)


junk_items = st.builds(
    lambda raw: Item("math", raw, None),
    st.binary(max_size=24) | json_values.map(lambda value: json.dumps(value).encode()),
)
items = st.one_of(v2_items(), v2_items(), v1_items(), junk_items)


def add_answered(fuzzed: FuzzedWorker) -> float:
    """Seconds until a fresh `math.add(4, 7)` has its record (fails past `ADD_BOUND`)."""
    task_id = str(uuid.uuid4())
    envelope = {
        "body": base64.b64encode(json.dumps([[4, 7], {}, {}]).encode()).decode(),
        "content-type": "application/json",
        "headers": {"task": "math.add", "id": task_id},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": "", "routing_key": "math"},
        },
    }
    started = time.monotonic()
    fuzzed.broker.lpush("math", json.dumps(envelope))
    return seconds_until_result(fuzzed.broker, task_id, 11, started=started, bound=ADD_BOUND, worker=fuzzed.worker)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(items, min_size=4, max_size=12))
def test_no_batch_of_queue_items_stops_the_worker_or_leaves_a_caller_without_a_record(
    fuzzed: FuzzedWorker, batch: list[Item]
) -> None:
    pipeline = fuzzed.broker.pipeline(transaction=False)
    for item in batch:
        pipeline.lpush(item.queue, item.raw)
    pipeline.execute()
    task_ids = [item.task_id for item in batch if item.task_id is not None]
    missing = missing_records(fuzzed.broker, task_ids, bound=RECORDS_BOUND)
    assert fuzzed.worker.alive(), fuzzed.worker.log()[-3000:]
    unread = [json.loads(item.raw) if item.task_id in missing else None for item in batch]
    assert not missing, f"no record for {missing}: {[item for item in unread if item]}\n{fuzzed.worker.log()[-3000:]}"
    add_answered(fuzzed)
    assert fuzzed.broker.llen("math") == 0 and fuzzed.broker.llen("celery") == 0
