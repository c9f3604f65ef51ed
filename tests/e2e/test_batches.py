"""Batches against a real worker: `map` in chunks or one message per call, and `submit_many`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

from task_client import BatchFailed, ContractMismatch, InvalidArguments, TaskClient, TaskFailed, TaskTimeout
from task_contracts import contract
from task_contracts.wire import MAX_CHUNK_SIZE, chunk_task_name

from ..brokers import Broker

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]


@pytest.fixture
def idle_queue(broker: Broker) -> Iterator[str]:
    """A queue no worker consumes: what is published there stays, countable."""
    name = f"idle-{uuid.uuid4().hex[:8]}"
    yield name
    broker.delete_queue(name)


def test_map_returns_results_in_input_order_across_chunks(client: TaskClient) -> None:
    pairs = [(i, 3 * i) for i in range(600)]
    assert client.add.map(pairs, chunk_size=100) == [4 * i for i in range(600)]
    assert client.add.map(pairs) == [4 * i for i in range(600)]


def test_map_takes_positional_and_named_argument_sets(client: TaskClient) -> None:
    assert client.add.map([(1, 2), [3, 4], {"x": 5, "y": 6}, {"y": 1, "x": 0}]) == [3, 7, 11, 1]
    assert client.xsum.map([([1, 2],), {"numbers": [3, 4]}]) == [3, 7]
    assert client.add.map([]) == []


def test_chunk_size_sets_how_many_messages_are_published(client: TaskClient, broker: Broker, idle_queue: str) -> None:
    idle = client.add.with_options(queue=idle_queue)
    idle.map([(i, i) for i in range(10)], chunk_size=1, timeout=0.2, return_exceptions=True)
    assert broker.queue_length(idle_queue) == 10
    broker.purge_queue(idle_queue)
    idle.map([(i, i) for i in range(10)], chunk_size=4, timeout=0.2, return_exceptions=True)
    assert broker.queue_length(idle_queue) == 3  # 10 calls by 4: chunks of 3, 3 and 4


def test_chunk_size_one_runs_one_normal_task_per_call(client: TaskClient) -> None:
    outcomes = client.div.map([(1, 2), (1, 0), (9, 3)], chunk_size=1, return_exceptions=True)
    assert outcomes[0] == 0.5 and outcomes[2] == 3.0
    failure = outcomes[1]
    assert isinstance(failure, TaskFailed) and failure.remote_type == "ZeroDivisionError"
    # Each call was its own message: three different task ids, and the failure's is readable alone.
    assert client.div.handle(failure.task_id or "").status == "FAILURE"


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_a_failing_call_fails_alone_and_the_others_return(client: TaskClient, chunk_size: int | None) -> None:
    with pytest.raises(BatchFailed) as caught:
        client.div.map([(1, 2), (1, 0), (9, 3), (5, 0)], chunk_size=chunk_size)
    error = caught.value
    assert error.contract == "math.div"
    assert error.outcomes[0] == 0.5 and error.outcomes[2] == 3.0
    assert sorted(error.errors) == [1, 3]
    assert all(
        isinstance(item, TaskFailed) and item.remote_type == "ZeroDivisionError" for item in error.errors.values()
    )
    assert "2 of 4 calls failed" in str(error) and "item 1" in str(error)


def test_one_timeout_bounds_the_whole_batch(client: TaskClient, idle_queue: str) -> None:
    idle = client.add.with_options(queue=idle_queue)
    started = time.monotonic()
    with pytest.raises(BatchFailed) as caught:
        idle.map([(i, i) for i in range(20)], chunk_size=1, timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 10  # one bound for all 20 calls, not 20 bounds one after another
    assert len(caught.value.errors) == 20
    assert all(isinstance(item, TaskTimeout) and item.timeout == 0.5 for item in caught.value.errors.values())


def test_an_invalid_item_is_refused_before_anything_is_published(
    client: TaskClient, broker: Broker, idle_queue: str
) -> None:
    idle = client.add.with_options(queue=idle_queue)
    with pytest.raises(InvalidArguments) as caught:
        idle.map([(1, 2), (3, 4), ("a", 5), (6, 7)])
    assert "item 2" in str(caught.value) and "x: Input should be a valid integer" in str(caught.value)
    assert caught.value.problems and caught.value.problems[0].startswith("item 2: x:")
    with pytest.raises(InvalidArguments, match="item 1: expected a tuple or list"):
        idle.map([(1, 2), 5])  # type: ignore[list-item]
    with pytest.raises(InvalidArguments, match="item 0: .*takes 2 positional arguments but 3"):
        idle.submit_many([(1, 2, 3)])
    assert broker.queue_length(idle_queue) == 0


def test_chunk_size_out_of_range_is_a_clear_error(client: TaskClient) -> None:
    for bad in (0, MAX_CHUNK_SIZE + 1, 2.5):
        with pytest.raises(ValueError, match="chunk_size must be an int from 1 to"):
            client.add.map([(1, 2)], chunk_size=bad)  # type: ignore[arg-type]


def test_submit_many_returns_one_handle_per_call(client: TaskClient) -> None:
    handles = client.add.submit_many([(i, 1) for i in range(50)])
    assert len({handle.id for handle in handles}) == 50
    assert [handle.result(timeout=30) for handle in handles] == [i + 1 for i in range(50)]


def test_chunk_calls_of_a_newer_contract_fail_alone_when_they_use_what_the_worker_lacks(client: TaskClient) -> None:
    @contract(name="math.add", queue="math", timeout=10)
    def add(x: int, y: int, z: int = 0) -> int: ...

    outcomes = client.task(add).map([(1, 2), {"x": 3, "y": 4, "z": 5}], return_exceptions=True)
    assert outcomes[0] == 3
    assert isinstance(outcomes[1], ContractMismatch) and "parameter 'z' is not known" in str(outcomes[1])


@pytest.fixture
def plain_celery(broker: Broker) -> Iterator[Celery]:
    app = broker.plain_celery()
    yield app
    app.close()


def test_any_producer_can_send_a_chunk_and_each_call_is_validated(plain_celery: Celery, worker: object) -> None:
    items = [[[1, 2], {}], [["a", 2], {}], [[], {"x": 3, "y": 4}], "junk"]
    records = plain_celery.send_task(chunk_task_name("math.add"), args=[items], queue="math").get(timeout=20)
    assert records[0] == {"status": "SUCCESS", "result": 3}
    assert records[1]["status"] == "FAILURE" and records[1]["result"]["exc_type"] == "InvalidArguments"
    assert records[2] == {"status": "SUCCESS", "result": 7}
    assert records[3]["result"]["exc_type"] == "InvalidArguments"
    oversize = plain_celery.send_task(
        chunk_task_name("math.add"), args=[[[[1, 1], {}]] * (MAX_CHUNK_SIZE + 1)], queue="math"
    )
    with pytest.raises(Exception, match="at most 1000") as caught:
        oversize.get(timeout=20)
    assert type(caught.value).__name__ == "InvalidArguments"
