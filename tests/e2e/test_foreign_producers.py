"""Any producer may send a message by name; the worker validates it all the same."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from task_client import TaskClient

from ..brokers import Broker

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
