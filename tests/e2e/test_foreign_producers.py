"""Any producer may send a message by name; the worker validates it all the same."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import amqp
import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from task_client import TaskClient

from ..brokers import Broker
from .raw_messages import publish_amqp, push

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]


@pytest.fixture
def plain_celery(broker: Broker, worker: object) -> Iterator[Celery]:
    app = broker.plain_celery()
    yield app
    app.close()


def test_plain_celery_send_task_by_wire_name(plain_celery: Celery) -> None:
    assert plain_celery.send_task("math.add", args=[4, 7], queue="math").get(timeout=10) == 11
    assert plain_celery.send_task("math.xsum", kwargs={"numbers": [1, 2, 3]}, queue="math").get(timeout=10) == 6


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ([4], {}, "y: Field required"),
        ([4, 7, 9], {}, "takes 2 positional arguments but 3 were given"),
        (["a", "b"], {}, "x: Input should be a valid integer"),
        ([4, 7], {"z": 1}, "z: Extra inputs are not permitted"),
    ],
)
def test_invalid_messages_fail_alone_and_the_worker_keeps_serving(
    plain_celery: Celery, client: TaskClient, args: list[object], kwargs: dict[str, object], problem: str
) -> None:
    result = plain_celery.send_task("math.add", args=args, kwargs=kwargs, queue="math")
    with pytest.raises(Exception) as caught:
        result.get(timeout=10)
    assert not isinstance(caught.value, CeleryTimeout)
    assert type(caught.value).__name__ == "InvalidArguments"
    assert problem in str(caught.value)
    assert client.add(1, 1) == 2


def test_the_smallest_raw_message_of_the_wire_docs_is_served(client: TaskClient, broker: Broker) -> None:
    """docs/wire.md: on RabbitMQ the body is the raw JSON call and `task` and `id` are AMQP headers."""
    body = json.dumps([[4, 7], {}, {}]).encode()
    if broker.kind == "rabbitmq":
        task_id = str(uuid.uuid4())
        message = amqp.Message(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            application_headers={"task": "math.add", "id": task_id},
            delivery_mode=2,
        )
        publish_amqp(broker.url, "math", message)  # declares the quorum queue "math", publish confirmed
    else:
        task_id = push(broker.url, "math.add", body, queue="math")
    assert client.add.handle(task_id).result(timeout=10) == 11
