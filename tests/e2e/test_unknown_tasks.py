"""Fault 5: a name no worker serves fails fast with `UnknownTask` wherever a worker can report it."""

from __future__ import annotations

import time

import pytest

from task_client import TaskClient, UnknownTask
from task_contracts import contract
from task_server.testing import WorkerProcess

from ..brokers import Broker
from .raw_messages import json_body, push

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]

#: Seconds within which a worker's NotRegistered answer must arrive: loose for a loaded machine, and
#: far below each call's own bound (20 s), so a timeout can never pass for it.
UNKNOWN_AT_ONCE = 5.0


def test_an_unknown_name_on_any_queue_the_worker_consumes_is_unknown_quickly(client: TaskClient) -> None:
    @contract(name="diagnostics.nonexistent", queue="diagnostics", timeout=30)
    def nonexistent(x: int) -> int: ...

    # A bound far above the answer: a TaskTimeout here would mean the client waited for nothing.
    started = time.monotonic()
    with pytest.raises(UnknownTask, match=r"diagnostics\.nonexistent") as caught:
        client.task(nonexistent).with_options(timeout=20)(1)
    assert time.monotonic() - started < UNKNOWN_AT_ONCE
    assert caught.value.task_id


def test_an_unknown_name_from_a_foreign_producer_is_reported_by_the_worker(
    client: TaskClient, broker: Broker, worker: WorkerProcess
) -> None:
    task_id = push(broker.url, "billing.charge", json_body([1], {}), queue="math")

    @contract(name="billing.charge", queue="math", timeout=30)
    def charge(x: int) -> int: ...

    started = time.monotonic()
    with pytest.raises(UnknownTask, match=r"billing\.charge"):
        client.task(charge).handle(task_id).result(timeout=20)
    assert time.monotonic() - started < UNKNOWN_AT_ONCE
    assert "billing.charge" in worker.log()
