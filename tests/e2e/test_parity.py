"""Sync and async behave the same: every row of the behaviour table, on both faces, against a real worker.

The rows are the table "Sync and async behave the same" in docs/client.md, in the same order; a
test below checks that the two lists agree, so the table cannot drift from what is tested.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from task_client import (
    AsyncTaskClient,
    BatchFailed,
    BrokerUnavailable,
    ClientClosed,
    InvalidArguments,
    TaskClient,
    TaskFailed,
    TaskTimeout,
    UnknownTask,
)
from task_contracts import Contract, contract, math
from task_server.testing import RedisProcess, WorkerProcess, free_port, wait_until

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


@contract(name="math.not_served", queue="math", timeout=30)
def not_served(x: int) -> int:
    """A contract no worker implements."""
    ...


class Face:
    """One face of the client, driven from plain test code: every operation returns or raises."""

    kind = ""

    def __init__(self, broker_url: str, result_backend: str | None = None) -> None:
        self.broker_url, self.result_backend = broker_url, result_backend

    def call(self, item: Contract[..., Any], *args: Any, timeout: float | None = None, queue: str | None = None) -> Any:
        raise NotImplementedError

    def submit(self, item: Contract[..., Any], *args: Any, queue: str | None = None) -> Any:
        raise NotImplementedError

    def result(self, handle: Any, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def status(self, handle: Any) -> str:
        raise NotImplementedError

    def progress(self, handle: Any) -> Any:
        raise NotImplementedError

    def handle(self, item: Contract[..., Any], task_id: str) -> Any:
        raise NotImplementedError

    def map(self, item: Contract[..., Any], arg_sets: list[Any], **options: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SyncFace(Face):
    kind = "sync"

    def __init__(self, broker_url: str, result_backend: str | None = None) -> None:
        super().__init__(broker_url, result_backend)
        self.client = TaskClient(broker_url, result_backend)

    def call(self, item: Contract[..., Any], *args: Any, timeout: float | None = None, queue: str | None = None) -> Any:
        return self.client.task(item).with_options(timeout=timeout, queue=queue)(*args)

    def submit(self, item: Contract[..., Any], *args: Any, queue: str | None = None) -> Any:
        return self.client.task(item).with_options(queue=queue).submit(*args)

    def result(self, handle: Any, timeout: float | None = None) -> Any:
        return handle.result(timeout=timeout)

    def status(self, handle: Any) -> str:
        return str(handle.status)

    def progress(self, handle: Any) -> Any:
        return handle.progress

    def handle(self, item: Contract[..., Any], task_id: str) -> Any:
        return self.client.task(item).handle(task_id)

    def map(self, item: Contract[..., Any], arg_sets: list[Any], **options: Any) -> Any:
        queue = options.pop("queue", None)
        return self.client.task(item).with_options(queue=queue).map(arg_sets, **options)

    def close(self) -> None:
        self.client.close()


class AsyncFace(Face):
    """The standalone `AsyncTaskClient`; each operation runs in a fresh event loop (any loop will do)."""

    kind = "async"

    def __init__(self, broker_url: str, result_backend: str | None = None) -> None:
        super().__init__(broker_url, result_backend)
        self.client = AsyncTaskClient(broker_url, result_backend)

    def call(self, item: Contract[..., Any], *args: Any, timeout: float | None = None, queue: str | None = None) -> Any:
        return asyncio.run(self.client.task(item).with_options(timeout=timeout, queue=queue)(*args))

    def submit(self, item: Contract[..., Any], *args: Any, queue: str | None = None) -> Any:
        return asyncio.run(self.client.task(item).with_options(queue=queue).submit(*args))

    def result(self, handle: Any, timeout: float | None = None) -> Any:
        return asyncio.run(handle.result(timeout=timeout))

    def status(self, handle: Any) -> str:
        return str(asyncio.run(handle.status()))

    def progress(self, handle: Any) -> Any:
        return asyncio.run(handle.progress())

    def handle(self, item: Contract[..., Any], task_id: str) -> Any:
        return self.client.task(item).handle(task_id)

    def map(self, item: Contract[..., Any], arg_sets: list[Any], **options: Any) -> Any:
        queue = options.pop("queue", None)
        return asyncio.run(self.client.task(item).with_options(queue=queue).map(arg_sets, **options))

    def close(self) -> None:
        asyncio.run(self.client.aclose())


FACES: dict[str, type[Face]] = {"sync": SyncFace, "async": AsyncFace}


@dataclass
class Env:
    """What a row may use: the session's Redis and worker, a queue no worker consumes, a spare Redis."""

    redis_url: str
    idle_queue: str
    spare_redis: Callable[[], RedisProcess]
    face_class: type[Face]

    def face(self, broker_url: str | None = None, result_backend: str | None = None) -> Face:
        return self.face_class(broker_url or self.redis_url, result_backend)


# -- the rows ------------------------------------------------------------------------------
# Each returns what it observed; `expect` checks it. The same function runs on both faces.


def returns_the_result(env: Env, face: Face) -> Any:
    return face.call(math.add, 4, 7)


def handle_status_then_result(env: Env, face: Face) -> Any:
    handle = face.submit(math.add, 2, 3)
    value = face.result(handle, timeout=10)
    return value, face.status(handle), face.progress(handle)


def invalid_arguments(env: Env, face: Face) -> Any:
    face.call(math.add, "a", 7)


def task_raises(env: Env, face: Face) -> Any:
    face.call(math.div, 1, 0)


def not_served_by_any_worker(env: Env, face: Face) -> Any:
    started = time.monotonic()
    try:
        face.call(not_served, 1, timeout=20)
    except UnknownTask as error:
        return type(error), time.monotonic() - started


def no_result_within_the_bound(env: Env, face: Face) -> Any:
    handle = face.submit(math.add, 1, 2, queue=env.idle_queue)
    try:
        face.result(handle, timeout=0.5)
    except TaskTimeout as error:
        return error.timeout, error.task_id == handle.id, face.status(handle)


def per_call_bound(env: Env, face: Face) -> Any:
    try:
        face.call(math.add, 1, 2, timeout=0.3, queue=env.idle_queue)
    except TaskTimeout as error:
        return error.timeout


def missed_message_found_by_the_final_read(env: Env, face: Face) -> Any:
    """The record is stored after the subscription and its first read, with no message: only the final read sees it."""
    store = redis.Redis.from_url(env.redis_url)
    reads_before = mget_calls(store)
    handle = face.submit(math.add, 4, 7, queue=env.idle_queue)
    key = f"celery-task-meta-{handle.id}"

    def store_silently() -> None:
        wait_until(lambda: store.pubsub_numsub(key)[0][1] == 1, 10, "the client's subscription")
        wait_until(lambda: mget_calls(store) > reads_before, 10, "the read that follows the subscription")
        store.set(key, json.dumps({"status": "SUCCESS", "result": 11, "task_id": handle.id}))

    writer = threading.Thread(target=store_silently)
    writer.start()
    try:
        return face.result(handle, timeout=2.0)
    finally:
        writer.join(timeout=15)
        store.close()


def mget_calls(store: redis.Redis) -> int:
    stats = store.info("commandstats").get("cmdstat_mget", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def unknown_id_is_pending(env: Env, face: Face) -> Any:
    handle = face.handle(math.add, str(uuid.uuid4()))
    return face.status(handle), face.progress(handle)


def broker_refuses(env: Env, face: Face) -> Any:
    nowhere = env.face(f"redis://127.0.0.1:{free_port()}/0")
    try:
        nowhere.call(math.add, 1, 2)
    finally:
        nowhere.close()


def backend_lost_while_waiting(env: Env, face: Face) -> Any:
    backend = env.spare_redis()
    lost = env.face(env.redis_url, backend.url)
    try:
        handle = lost.submit(math.add, 1, 2, queue=env.idle_queue)
        backend.stop()
        started = time.monotonic()
        try:
            lost.result(handle, timeout=1.0)
        except BrokerUnavailable as error:
            return str(error).startswith("result backend "), error.task_id == handle.id, time.monotonic() - started
    finally:
        lost.close()


def call_after_close(env: Env, face: Face) -> Any:
    closed = env.face()
    closed.close()
    closed.call(math.add, 1, 2)


def batch_with_a_failing_call(env: Env, face: Face) -> Any:
    try:
        face.map(math.div, [(1, 2), (1, 0)])
    except BatchFailed as error:
        return error.outcomes[0], {index: type(item) for index, item in error.errors.items()}


def batch_returning_exceptions(env: Env, face: Face) -> Any:
    outcomes = face.map(math.div, [(1, 2), (1, 0), {"x": 9, "y": 3}], return_exceptions=True)
    return [item if isinstance(item, float) else type(item) for item in outcomes]


def batch_out_of_time(env: Env, face: Face) -> Any:
    outcomes = face.map(math.add, [(1, 2), (3, 4), (5, 6)], timeout=0.5, queue=env.idle_queue, return_exceptions=True)
    return [type(item) for item in outcomes]


def invalid_batch_item(env: Env, face: Face) -> Any:
    face.map(math.add, [(1, 2), ("x", 2)])


@dataclass(frozen=True)
class Row:
    behaviour: str
    scenario: Callable[[Env, Face], Any]
    expect: Callable[[Any], bool]


def raised(kind: type[BaseException], check: Callable[[Any], bool] = lambda _: True) -> Callable[[Any], bool]:
    return lambda observed: isinstance(observed, kind) and check(observed)


ROWS = [
    Row("a call returns the validated result", returns_the_result, lambda seen: seen == 11),
    Row(
        "a handle: result, then status SUCCESS, then no progress",
        handle_status_then_result,
        lambda seen: seen == (5, "SUCCESS", None),
    ),
    Row(
        "arguments that break the contract: `InvalidArguments`, nothing published",
        invalid_arguments,
        raised(InvalidArguments, lambda e: e.task_id is None and any(p.startswith("x:") for p in e.problems)),
    ),
    Row(
        "the task raises on the worker: `TaskFailed`",
        task_raises,
        raised(TaskFailed, lambda e: e.remote_type == "ZeroDivisionError" and e.task_id),
    ),
    Row(
        "no worker serves the name: `UnknownTask` at once",
        not_served_by_any_worker,
        lambda seen: seen[0] is UnknownTask and seen[1] < 10,
    ),
    Row(
        "no result within the bound: `TaskTimeout`, the call stays PENDING",
        no_result_within_the_bound,
        lambda seen: seen == (0.5, True, "PENDING"),
    ),
    Row("`with_options(timeout=)` bounds the call", per_call_bound, lambda seen: seen == 0.3),
    Row(
        "a result stored without its message is found by the final read",
        missed_message_found_by_the_final_read,
        lambda seen: seen == 11,
    ),
    Row("an id nobody published is PENDING", unknown_id_is_pending, lambda seen: seen == ("PENDING", None)),
    Row(
        "the broker refuses connections: `BrokerUnavailable`",
        broker_refuses,
        raised(BrokerUnavailable, lambda e: str(e).startswith("broker ") and "Connection refused" in str(e)),
    ),
    Row(
        "the result backend is lost while waiting: `BrokerUnavailable` after the bound and one read",
        backend_lost_while_waiting,
        lambda seen: seen[:2] == (True, True) and 1.0 <= seen[2] < 1.0 + 3.0 + 1.5,
    ),
    Row("a call on a closed client: `ClientClosed`", call_after_close, raised(ClientClosed)),
    Row(
        "a batch with a failing call: `BatchFailed` with every outcome",
        batch_with_a_failing_call,
        lambda seen: seen == (0.5, {1: TaskFailed}),
    ),
    Row(
        "a batch with `return_exceptions=True`: values and errors in input order",
        batch_returning_exceptions,
        lambda seen: seen == [0.5, TaskFailed, 3.0],
    ),
    Row(
        "a batch that runs out of time: `TaskTimeout` for each unfinished call",
        batch_out_of_time,
        lambda seen: seen == [TaskTimeout, TaskTimeout, TaskTimeout],
    ),
    Row(
        "an invalid batch item: `InvalidArguments` naming it, nothing published",
        invalid_batch_item,
        raised(InvalidArguments, lambda e: e.problems[0].startswith("item 1: x:")),
    ),
]


@pytest.fixture
def idle_queue(redis_url: str) -> Iterator[str]:
    name = f"idle-{uuid.uuid4().hex[:8]}"
    yield name
    store = redis.Redis.from_url(redis_url)
    store.delete(name)
    store.close()


@pytest.fixture
def spare_redis(tmp_path: Path) -> Iterator[Callable[[], RedisProcess]]:
    started: list[RedisProcess] = []

    def start() -> RedisProcess:
        workdir = tmp_path / f"spare-{len(started)}"
        workdir.mkdir()
        process = RedisProcess(workdir=str(workdir))
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.mark.parametrize("face_kind", list(FACES))
@pytest.mark.parametrize("row", ROWS, ids=[row.scenario.__name__ for row in ROWS])
def test_each_behaviour_is_the_same_on_both_faces(
    row: Row,
    face_kind: str,
    redis_url: str,
    worker: WorkerProcess,
    idle_queue: str,
    spare_redis: Callable[[], RedisProcess],
) -> None:
    env = Env(redis_url, idle_queue, spare_redis, FACES[face_kind])
    face = env.face()
    try:
        try:
            observed: Any = row.scenario(env, face)
        except Exception as error:
            observed = error
    finally:
        face.close()
    assert row.expect(observed), f"{row.behaviour} ({face_kind}): observed {observed!r}"


def test_the_documented_table_is_the_tested_one() -> None:
    page = (REPO_ROOT / "docs" / "client.md").read_text()
    section = page.split("## Sync and async behave the same", 1)[1].split("\n## ", 1)[0]
    documented = [
        match.group(1).strip()
        for match in re.finditer(r"^\| (.+?) \|", section, re.MULTILINE)
        if "---" not in match.group(0)
    ][1:]  # the header row
    assert documented == [row.behaviour for row in ROWS]
