"""Fuzzing the crash-recovery bookkeeping a real worker reads (issue 19).

`hypothesis` writes garbage where kombu and the worker keep their bookkeeping: entries of the
unacked hash (any bytes, JSON of any shape, triples of the wrong types) with or without an entry in
the unacked index, a sweep lock that never expires, and garbage start counters and running marks
under the task ids of the calls that follow. After each batch the worker is alive, answers
`math.add(4, 7)` within 1 s, and a message genuinely lost by a worker (its entry in the unacked
record, delivered long ago) still comes back and runs.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_server.testing import RedisProcess, WorkerProcess

from ..catalog import serving

pytestmark = pytest.mark.e2e

ADD_BOUND = 1.0
VISIBILITY_TIMEOUT = 2  # the sweep runs every second
RESTORE_BOUND = 20.0  # the visibility timeout, a sweep, and a loaded machine


@dataclass
class Bookkept:
    worker: WorkerProcess
    broker: redis.Redis


@pytest.fixture(scope="module")
def bookkept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bookkept]:
    workdir = tmp_path_factory.mktemp("fuzz-bookkeeping")
    with RedisProcess(workdir=str(workdir)) as broker:
        broker.start()
        args = ["--visibility-timeout", str(VISIBILITY_TIMEOUT)]
        with WorkerProcess(broker.url, extra_args=args, logdir=str(workdir), **serving()) as worker:
            worker.start()
            connection = redis.Redis.from_url(broker.url, socket_timeout=10)
            try:
                yield Bookkept(worker, connection)
            finally:
                connection.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
entry_values = st.one_of(
    st.binary(max_size=40),
    json_values.map(json.dumps),
    st.tuples(json_values, json_values, json_values).map(lambda triple: json.dumps(list(triple))),
    st.tuples(
        st.dictionaries(st.sampled_from(["headers", "properties", "body"]), json_values), st.text(max_size=5)
    ).map(lambda pair: json.dumps([pair[0], pair[1], "math"])),
)
entries = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12).map(lambda tag: f"g-{tag}"),
        entry_values,
        st.none() | st.floats(min_value=0, max_value=time.time() - 3600),  # None: no index entry
    ),
    max_size=5,
    unique_by=lambda entry: entry[0],
)
# Garbage, not a forged count: an integer counter is valid bookkeeping (who may write it is the
# ACL's business, docs/security.md).
counter_values = st.one_of(st.just(b""), st.just("many"), st.binary(min_size=1, max_size=12)).filter(
    lambda value: not value.strip().lstrip(b"-" if isinstance(value, bytes) else "-").isdigit()
)
call_keys = st.fixed_dictionaries(
    {},
    optional={
        "task-sdk-deliveries-": counter_values,
        "task-sdk-running-": counter_values,
    },
)


def envelope(task_id: str, args: list[int]) -> dict[str, object]:
    return {
        "body": base64.b64encode(json.dumps([args, {}, {}]).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "math.add", "id": task_id, "lang": "py"},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "math"},
            "priority": 0,
        },
    }


def record(broker: redis.Redis, task_id: str, bound: float) -> object:
    started = time.monotonic()
    while time.monotonic() - started < bound:
        stored = broker.get(f"celery-task-meta-{task_id}")
        if stored is not None:
            return json.loads(stored)["result"]
        time.sleep(0.005)
    return None


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=entries, stuck_lock=st.booleans(), add_keys=call_keys, lost_keys=call_keys)
def test_garbage_bookkeeping_never_stops_the_worker_nor_the_recovery_of_a_lost_message(
    bookkept: Bookkept,
    garbage: list[tuple[str, str | bytes, float | None]],
    stuck_lock: bool,
    add_keys: dict[str, str | bytes],
    lost_keys: dict[str, str | bytes],
) -> None:
    broker = bookkept.broker
    add_id, lost_id = str(uuid.uuid4()), str(uuid.uuid4())
    written = [*(prefix + add_id for prefix in add_keys), *(prefix + lost_id for prefix in lost_keys)]
    with broker.pipeline(transaction=False) as pipe:
        for tag, value, score in garbage:
            pipe.hset("unacked", tag, value)
            if score is not None:
                pipe.zadd("unacked_index", {tag: score})
        if stuck_lock:
            pipe.set("unacked_mutex", "held by nobody")
        for prefix, value in add_keys.items():
            pipe.set(prefix + add_id, value)
        for prefix, value in lost_keys.items():
            pipe.set(prefix + lost_id, value)
        # A message a lost worker left: in the unacked record, delivered an hour ago.
        pipe.hset("unacked", "lost", json.dumps([envelope(lost_id, [20, 22]), "", "math"]))
        pipe.zadd("unacked_index", {"lost": time.time() - 3600})
        pipe.execute()
    try:
        broker.lpush("math", json.dumps(envelope(add_id, [4, 7])))
        assert record(broker, add_id, ADD_BOUND) == 11, bookkept.worker.log()[-3000:]
        assert record(broker, lost_id, RESTORE_BOUND) == 42, bookkept.worker.log()[-3000:]
        assert bookkept.worker.alive()
        assert "Error in timer" not in bookkept.worker.log()
    finally:
        with broker.pipeline(transaction=False) as pipe:
            pipe.delete(*written, f"celery-task-meta-{add_id}", f"celery-task-meta-{lost_id}")
            pipe.hdel("unacked", *(tag for tag, _, _ in garbage), "lost")
            pipe.zrem("unacked_index", *(tag for tag, _, _ in garbage), "lost")
            pipe.execute()
