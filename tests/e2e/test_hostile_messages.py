"""Fault 6: messages from producers that are not this client, hostile or malformed.

Each one is refused with a clear error stored as that task's result (so its caller learns why
at once), a line in the worker's log says so, the worker keeps serving, and no pickle is ever
deserialised. Sent raw (an LPUSH of a protocol-v2 envelope on Redis, an AMQP publish on RabbitMQ)
and with a plain Celery app.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from task_client import TaskClient, TaskFailed
from task_server._threads import DEFAULT_THREADS
from task_server.testing import WorkerProcess, wait_until

from ..brokers import Broker
from .raw_messages import json_body, push, push_raw

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]

TEN_MB = 10 * 1024 * 1024


def refusal(client: TaskClient, task_id: str) -> TaskFailed:
    """The error the worker stored for a message the client did not send."""
    with pytest.raises(TaskFailed) as caught:
        client.add.handle(task_id).result(timeout=30)
    return caught.value


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ([1], {}, "y: Field required"),
        ([1, 2, 3], {}, "takes 2 positional arguments but 3 were given"),
        (["a", "b"], {}, "x: Input should be a valid integer"),
        ([1, 2], {"z": 3}, "z: Extra inputs are not permitted"),
        ([1], {"y": [2]}, "y: Input should be a valid integer"),
    ],
    ids=["too-few", "too-many", "wrong-types", "extra-field", "nested-wrong-type"],
)
def test_arguments_that_break_the_contract_are_refused_as_invalid_arguments(
    client: TaskClient, broker: Broker, args: list[object], kwargs: dict[str, object], problem: str
) -> None:
    task_id = push(broker.url, "math.add", json_body(args, kwargs), queue="math")
    error = refusal(client, task_id)
    assert error.remote_type == "InvalidArguments"
    assert problem in error.remote_message
    assert client.add(2, 3) == 5


def test_unknown_headers_from_a_foreign_producer_are_ignored_and_the_call_validated(
    client: TaskClient, broker: Broker
) -> None:
    headers = {"x-tenant": "other", "retries": 0, "timelimit": [None, None]}
    task_id = push(broker.url, "math.add", json_body([20, 22], {}), queue="math", headers=headers)
    assert client.add.handle(task_id).result(timeout=30) == 42


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[[1, 2], {}, {}", "message body is not valid JSON"),
        (b'{"arguments": [1, 2]}', "not a protocol-v2 [args, kwargs, embed] triple"),
        (b"[[1, 2], [3], {}]", "not a protocol-v2 [args, kwargs, embed] triple"),
    ],
    ids=["not-json", "not-a-triple", "kwargs-not-a-mapping"],
)
def test_a_body_that_is_not_a_json_call_is_refused_and_logged(
    client: TaskClient, broker: Broker, worker: WorkerProcess, body: bytes, problem: str
) -> None:
    task_id = push(broker.url, "math.add", body, queue="math")
    error = refusal(client, task_id)
    assert error.remote_type == "RefusedMessage"
    assert problem in error.remote_message
    assert f"refused a message for math.add (task id {task_id})" in worker.log()
    assert client.add(2, 3) == 5


class _CreatesFileWhenUnpickled:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_a_pickle_body_is_refused_without_being_unpickled(
    client: TaskClient, broker: Broker, worker: WorkerProcess, tmp_path: Path
) -> None:
    evidence = tmp_path / "unpickled"
    body = pickle.dumps(((_CreatesFileWhenUnpickled(evidence), 1), {}, {}))
    task_id = push(broker.url, "math.add", body, queue="math", content_type="application/x-python-serialize")
    error = refusal(client, task_id)
    assert error.remote_type == "RefusedMessage"
    assert "content type 'application/x-python-serialize' is not accepted" in error.remote_message
    assert f"refused a message for math.add (task id {task_id})" in worker.log()
    assert client.add(2, 3) == 5
    assert not evidence.exists()


@pytest.mark.parametrize("name", ["math.xsum", "math.xsum:chunk"])
def test_a_10_mb_payload_is_refused_by_size(
    client: TaskClient, broker: Broker, worker: WorkerProcess, name: str
) -> None:
    # Chunk tasks go through the same intake checks as single calls.
    task_id = push(broker.url, name, json_body([[1] * (TEN_MB // 3)], {}), queue="math")
    error = refusal(client, task_id)
    assert error.remote_type == "RefusedMessage"
    assert "more than this worker accepts (1048576 bytes" in error.remote_message
    wait_until(lambda: f"(task id {task_id})" in worker.log(), 10, "the refusal in the worker log")
    assert client.xsum([1, 2, 3]) == 6


def test_a_body_under_the_cap_whose_headers_carry_the_message_over_it_is_refused(
    client: TaskClient, broker: Broker, worker: WorkerProcess
) -> None:
    """`--max-message-bytes` caps the whole message, not only its body (before, headers of any size
    passed). A body of ~1,000,000 bytes runs with small headers (on Redis its base64 form, a third
    larger, counts as the bytes it decodes to), and is refused with 100 kB of headers (RabbitMQ's
    frame_max, 128 KiB, bounds a message's headers there)."""
    numbers = [1] * 333_000
    body = json_body([numbers], {})
    assert 1_048_576 - 100_000 < len(body) < 1_040_000
    task_id = push(broker.url, "math.xsum", body, queue="math")
    assert client.xsum.handle(task_id).result(timeout=30) == len(numbers)
    task_id = push(broker.url, "math.xsum", body, queue="math", headers={"argsrepr": "x" * 100_000})
    error = refusal(client, task_id)
    assert error.remote_type == "RefusedMessage"
    assert "(body, headers and properties), more than this worker accepts (1048576 bytes" in error.remote_message
    wait_until(lambda: f"(task id {task_id})" in worker.log(), 10, "the refusal in the worker log")
    assert client.xsum([1, 2, 3]) == 6


def test_a_body_over_the_cap_in_utf8_bytes_is_refused_though_it_has_fewer_characters(
    client: TaskClient, broker: Broker, worker: WorkerProcess
) -> None:
    """The cap counts bytes. py-amqp hands a body with a content_encoding over as text (and a Redis
    body not in base64 is text too): before, its characters were counted, so 600,000 two-byte
    characters (1.2 MB) passed a cap of 1 MiB on RabbitMQ, which Redis refused in base64."""
    encoded = json_body(["\u00e9" * 600_000, 1], {}, ensure_ascii=False)
    assert len(encoded.decode()) < 1_048_576 < len(encoded)
    task_id = push(broker.url, "math.add", encoded, queue="math")
    error = refusal(client, task_id)
    assert error.remote_type == "RefusedMessage"
    assert "more than this worker accepts (1048576 bytes" in error.remote_message
    assert client.add(2, 3) == 5


def test_a_message_over_the_cap_in_utf8_bytes_only_with_its_headers_is_refused(
    client: TaskClient, broker: Broker, worker: WorkerProcess
) -> None:
    """The whole message counts bytes too: before, RabbitMQ's count added the body's characters
    (py-amqp hands it over as text), so 960,000 bytes of two-byte characters and 100 kB of headers
    passed a cap of 1 MiB there (and ran, to fail validation), which Redis refused."""
    body = json_body(["\u00e9" * 480_000, 1], {}, ensure_ascii=False)
    headers = {"argsrepr": "x" * 100_000}
    assert len(body) < 1_048_576 < len(body) + 100_000 and len(body.decode()) + 100_000 < 1_048_576
    task_id = push(broker.url, "math.add", body, queue="math", headers=headers)
    error = refusal(client, task_id)
    assert error.remote_type == "RefusedMessage"
    assert "(body, headers and properties), more than this worker accepts (1048576 bytes" in error.remote_message
    assert client.add(2, 3) == 5


@pytest.fixture
def plain_celery(broker: Broker) -> Iterator[Celery]:
    """A producer that is a stock Celery app, not task-client."""
    app = broker.plain_celery(
        "foreign",
        result_backend=None,
        accept_content=["json", "pickle"],
        broker_connection_retry_on_startup=True,
        task_create_missing_queues=True,
    )
    yield app
    app.close()


def test_a_plain_celery_producer_is_served_and_validated(client: TaskClient, plain_celery: Celery) -> None:
    good = plain_celery.send_task("math.add", args=[40, 2], queue="math")
    assert client.add.handle(good.id).result(timeout=30) == 42  # no fingerprint: accepted, validated
    bad = plain_celery.send_task("math.add", args=["a", "b"], queue="math")
    assert refusal(client, bad.id).remote_type == "InvalidArguments"


def test_a_plain_celery_producer_sending_pickle_is_refused(
    client: TaskClient, plain_celery: Celery, tmp_path: Path
) -> None:
    evidence = tmp_path / "unpickled"
    sent = plain_celery.send_task(
        "math.add", args=[_CreatesFileWhenUnpickled(evidence), 1], queue="math", serializer="pickle"
    )
    assert refusal(client, sent.id).remote_type == "RefusedMessage"
    assert client.add(2, 3) == 5
    assert not evidence.exists()


# Items that are no Celery message at all. On Redis each is a list item that is no envelope: before
# the guard, the first one stopped the whole worker ("Unrecoverable error"). On RabbitMQ headers and
# body travel apart, and a message without a `task` header is dropped by Celery itself.
JUNK = {
    "redis": [b"not json at all", b"[1, 2]", b'{"body": 1}', b'{"headers": {"task": "math.add"}}'],
    "rabbitmq": [b"not json at all", b"[1, 2]", b'{"body": 1}', b"[[1, 2], {}, {}]"],
}
DROPPED = {
    "redis": "dropped an item on a task queue that is not a Celery message envelope",
    "rabbitmq": "Received and deleted unknown message",
}


def test_items_that_are_not_celery_envelopes_are_dropped_and_the_worker_keeps_serving(
    client: TaskClient, broker: Broker, worker: WorkerProcess
) -> None:
    junk, dropped = JUNK[broker.kind], DROPPED[broker.kind]
    before = worker.log().count(dropped)
    for item in junk:
        push_raw(broker.url, "math", item)
    wait_until(lambda: worker.log().count(dropped) >= before + len(junk), 30, "every item to be dropped")
    assert worker.alive()
    assert client.add(2, 3) == 5


# More messages than a worker's prefetch window (concurrency 2 x 4; on RabbitMQ 4 per serving thread
# too, `task_server._prefetch`): before, each of these was delivered and never acknowledged, so after
# the 8th the worker, alive, served nothing.
PAST_THE_PREFETCH_WINDOW = {"redis": 4 * 2 + 2, "rabbitmq": 4 * (2 + DEFAULT_THREADS) + 2}


@pytest.mark.parametrize(
    ("headers", "embed", "problem"),
    [
        ({"retries": "many"}, {}, "header 'retries' must be a non-negative integer, not 'many'"),
        ({"timelimit": "x"}, {}, "header 'timelimit' must be [hard, soft] seconds"),
        ({}, {"callbacks": "junk"}, "embed field 'callbacks' must be a list of task signatures or null, not 'junk'"),
        ({"eta": "not a date"}, {}, "header 'eta' is not an ISO 8601 date-time"),
        ({"eta": 12345}, {}, "header 'eta' must be an ISO 8601 date-time string or null, not 12345"),
        ({"expires": "nope"}, {}, "header 'expires' is not an ISO 8601 date-time"),
        ({"task": ["math.add"]}, {}, "header 'task' must be a string, not ['math.add']"),
    ],
    ids=["retries-many", "timelimit-junk", "callbacks-junk", "eta-unparseable", "eta-integer", "expires", "task-list"],
)
def test_headers_celery_cannot_read_are_refused_and_the_worker_keeps_consuming(
    client: TaskClient,
    broker: Broker,
    worker: WorkerProcess,
    headers: dict[str, object],
    embed: dict[str, object],
    problem: str,
) -> None:
    body = json.dumps([[1, 2], {}, embed]).encode()
    count = PAST_THE_PREFETCH_WINDOW[broker.kind]
    task_ids = [push(broker.url, "math.add", body, queue="math", headers=headers) for _ in range(count)]
    for task_id in task_ids:
        error = refusal(client, task_id)
        assert error.remote_type == "RefusedMessage"
        assert problem in error.remote_message
    assert client.add(2, 3) == 5
    assert worker.alive()


def test_a_poison_pill_nested_10000_deep_is_refused_and_the_worker_lives(
    client: TaskClient, broker: Broker, worker: WorkerProcess
) -> None:
    pill = b"[[" + b"[" * 10_000 + b"]" * 10_000 + b"], {}, {}]"  # 20 KB; before, RecursionError stopped the worker
    task_ids = [push(broker.url, "math.xsum", pill, queue="math") for _ in range(3)]
    for task_id in task_ids:
        error = refusal(client, task_id)
        assert error.remote_type == "RefusedMessage"
        assert "nested too deeply (more than 100 levels)" in error.remote_message
    assert worker.alive()
    assert client.xsum([1, 2, 3]) == 6
