"""Workflows against a real worker: chains, groups and chords run by the workers through Celery's
canvas; a failing link is named; the whole workflow is bounded; the same from asyncio."""

from __future__ import annotations

import asyncio
import time

import pytest

from task_client import (
    AsyncWorkflowHandle,
    CancelResult,
    ContractMismatch,
    TaskCancelled,
    TaskClient,
    TaskFailed,
    TaskTimeout,
    WorkflowHandle,
    chord,
    group,
)
from task_contracts import contract

from ..catalog import diagnostics

pytestmark = pytest.mark.e2e


@pytest.mark.every_broker
def test_a_chain_feeds_each_result_into_the_next_link(client: TaskClient) -> None:
    assert (client.add.s(4, 7) | client.mul.s(10))() == 110
    handle = (client.add.s(4, 7) | client.mul.s(10) | client.add.s(y=1)).submit()
    assert isinstance(handle, WorkflowHandle)
    assert list(handle.link_ids) == ["link 1 of 3 (math.add)", "link 2 of 3 (math.mul)", "link 3 of 3 (math.add)"]
    assert handle.id == handle.link_ids["link 3 of 3 (math.add)"]
    assert handle.result(timeout=20) == 111
    # Every link ran as its own task on the worker, with its own stored result.
    assert client.add.handle(handle.link_ids["link 1 of 3 (math.add)"]).result(timeout=5) == 11
    assert client.mul.handle(handle.link_ids["link 2 of 3 (math.mul)"]).result(timeout=5) == 110


def test_a_group_returns_its_results_in_input_order(client: TaskClient) -> None:
    # The slowest call comes first: completion order differs from input order.
    slow_first = group(
        client.task(diagnostics.sleep).s(0.6),
        client.task(diagnostics.sleep).s(0.0),
        client.task(diagnostics.sleep).s(0.2),
    )
    assert slow_first() == [0.6, 0.0, 0.2]
    assert group(client.add.s(1, 1), client.mul.s(3, 3), client.add.s(4, 7) | client.mul.s(2))() == [2, 9, 22]


@pytest.mark.every_broker
def test_a_chord_feeds_the_list_of_results_to_its_callback(client: TaskClient) -> None:
    assert chord(group(client.add.s(1, 1), client.add.s(2, 2), client.add.s(3, 3)), client.xsum.s())() == 12
    # A group followed by a partial is a chord too, and a chord can be chained on.
    assert (group(client.add.s(1, 1), client.add.s(2, 2)) | client.xsum.s() | client.mul.s(10))() == 60


@pytest.mark.every_broker
def test_a_failure_in_the_middle_of_a_chain_names_the_link(client: TaskClient) -> None:
    handle = (client.div.s(8, 2) | client.div.s(0) | client.div.s(2)).submit()
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=20)
    error = caught.value
    assert error.remote_type == "ZeroDivisionError"
    assert error.contract == "math.div"
    assert error.task_id == handle.link_ids["link 2 of 3 (math.div)"]
    assert str(error).startswith("link 2 of 3 (math.div) of math.div(8.0, 2.0) | math.div(_, 0.0) | math.div(_, 2.0)")
    assert client.div.handle(handle.link_ids["link 1 of 3 (math.div)"]).result(timeout=5) == 4.0


def test_a_failing_chord_member_is_named(client: TaskClient) -> None:
    with pytest.raises(TaskFailed, match=r"^header, item 2 of 3 \(math.div\) of chord") as caught:
        chord(group(client.div.s(1, 1), client.div.s(1, 0), client.div.s(1, 2)), client.xsum.s())(timeout=20)
    assert caught.value.remote_type == "ZeroDivisionError"


def test_the_worker_validates_every_link(client: TaskClient) -> None:
    # [1.0, 0.5] is a list, as xsum wants, but not of integers: only the worker can tell.
    with pytest.raises(TaskFailed, match=r"^callback \(math.xsum\)") as caught:
        chord(group(client.div.s(1, 1), client.div.s(1, 2)), client.xsum.s())(timeout=20)
    assert caught.value.remote_type == "InvalidArguments"
    assert "numbers.1" in caught.value.remote_message


@contract(name="math.mul", queue="math", timeout=10, idempotent=True)
def mul_of_another_version(x: int, y: str) -> int:  # type: ignore[empty-body]
    """The client's idea of math.mul differs from the worker's."""
    ...


def test_each_link_carries_the_contract_identity_for_the_worker_to_check(client: TaskClient) -> None:
    other_mul = client.task(mul_of_another_version)
    assert (client.add.s(1, 2) | other_mul.s("10"))(timeout=20) == 30  # the worker's int accepts "10"
    with pytest.raises(ContractMismatch, match=r"^link 2 of 2 \(math.mul\).*y changed from str to int"):
        (client.add.s(1, 2) | other_mul.s("ten"))(timeout=20)


def test_the_whole_workflow_is_bounded(client: TaskClient) -> None:
    workflow = client.task(diagnostics.sleep).s(1.0) | client.task(diagnostics.sleep).s()
    assert workflow.timeout == 6.0  # the sum of the links' bounds (3 s each)
    handle = workflow.submit()
    started = time.monotonic()
    with pytest.raises(TaskTimeout) as caught:
        handle.result(timeout=0.5)
    assert time.monotonic() - started < 3.0
    assert caught.value.task_id == handle.id and caught.value.timeout == 0.5
    assert "workflow diagnostics.sleep(1.0) | diagnostics.sleep(_): no result within 0.5 s" in str(caught.value)
    # The links kept running: waiting again gets the value.
    assert handle.result() == 1.0


def test_workflows_from_asyncio(client: TaskClient) -> None:
    aio = client.aio

    async def main() -> None:
        assert await (aio.add.s(4, 7) | aio.mul.s(10))() == 110
        handle = await (aio.add.s(1, 2) | aio.mul.s(3)).submit()
        assert isinstance(handle, AsyncWorkflowHandle)
        assert await handle == 9
        assert await handle.result(timeout=10) == 9
        assert await group(aio.task(diagnostics.sleep).s(0.3), aio.add.s(1, 1))() == [0.3, 2]
        assert await chord(group(aio.add.s(1, 1), aio.add.s(2, 2)), aio.xsum.s())() == 6
        with pytest.raises(TaskFailed, match=r"^link 2 of 2 \(math.div\)"):
            await (aio.div.s(1, 1) | aio.div.s(0))()
        with pytest.raises(TaskTimeout):
            await (aio.task(diagnostics.sleep).s(1.0) | aio.task(diagnostics.sleep).s())(timeout=0.3)

    asyncio.run(main())


def test_cancel_stops_every_link_of_a_workflow(client: TaskClient) -> None:
    handle = (
        client.task(diagnostics.sleep).s(1.0) | client.task(diagnostics.sleep).s() | client.task(diagnostics.sleep).s()
    ).submit()
    started = time.monotonic()
    results = handle.cancel()
    assert list(results) == list(handle.link_ids)
    # The links after the first were not published yet: cancelled for sure.
    assert results["link 2 of 3 (diagnostics.sleep)"] == CancelResult.CANCELLED
    assert results["link 3 of 3 (diagnostics.sleep)"] == CancelResult.CANCELLED
    with pytest.raises(TaskCancelled) as caught:
        handle.result(timeout=20)
    assert time.monotonic() - started < 5.0, "the waiter learned of the cancel only at its bound"
    assert caught.value.contract == "diagnostics.sleep"
    first = handle.link_ids["link 1 of 3 (diagnostics.sleep)"]
    if results["link 1 of 3 (diagnostics.sleep)"] == CancelResult.RUNNING:
        # It ran to its end; the link after it must still never run.
        assert client.task(diagnostics.sleep).handle(first).result(timeout=10) == 1.0
    second = client.task(diagnostics.sleep).handle(handle.link_ids["link 2 of 3 (diagnostics.sleep)"])
    assert second.status == "REVOKED"


def test_cancel_from_asyncio(client: TaskClient) -> None:
    async def main() -> None:
        handle = await (client.aio.task(diagnostics.sleep).s(1.0) | client.aio.task(diagnostics.sleep).s()).submit()
        results = await handle.cancel()
        assert results["link 2 of 2 (diagnostics.sleep)"] == CancelResult.CANCELLED
        with pytest.raises(TaskCancelled):
            await handle.result(timeout=20)

    asyncio.run(main())
