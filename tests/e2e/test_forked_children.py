"""A client made before a fork serves calls in the child, as a prefork server's workers use one made
at import in its master (gunicorn, uwsgi) or a multiprocessing child uses its parent's: the child
gets connections, a result thread and a reply channel of its own, and the parent's stay the parent's.

Before: the child's calls waited on the parent's result thread, which did not survive the fork, and
failed with `BrokerUnavailable` after their bound plus a read's; a sync call read the parent's
reply connection, taking records meant for the parent."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Iterator

import pytest

from task_client import TaskClient
from tests.brokers import Broker
from tests.forking import reported_by_forked_child

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.every_broker,
    # Python 3.12+ warns about fork() in a process with threads: what these tests do on purpose.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

#: A bound on each call in the child, far below the old failure (bound + 3 s) and above a loaded machine's call.
CALL_BOUND = 10.0


def _calls(client: TaskClient) -> str:
    """Every way of calling, each bounded: sync, async, a batch, a handle, a chain."""

    async def awaited() -> int:
        return await client.aio.add.with_options(timeout=CALL_BOUND)(2, 3)

    handle = client.add.submit(3, 4)
    values = [
        client.add.with_options(timeout=CALL_BOUND)(1, 2),
        asyncio.run(awaited()),
        client.add.map([(1, 1), (2, 2)], timeout=CALL_BOUND),
        handle.result(timeout=CALL_BOUND),
        (client.add.s(1, 2) | client.mul.s(10))(timeout=CALL_BOUND),
    ]
    return repr(values)


EXPECTED = repr([3, 5, [2, 4], 7, 30])


@pytest.fixture
def used_client(broker: Broker, worker: object) -> Iterator[TaskClient]:
    """A client that has called before the fork: its pools, result thread and reply reader are up."""
    with TaskClient(broker.url, broker.result_backend) as client:
        assert client.add(4, 7) == 11
        assert asyncio.run(_awaited_add(client)) == 11
        yield client


async def _awaited_add(client: TaskClient) -> int:
    return await client.aio.add(4, 7)


def test_a_client_used_before_a_fork_serves_every_kind_of_call_in_the_child(used_client: TaskClient) -> None:
    assert reported_by_forked_child(lambda: _calls(used_client)) == EXPECTED
    assert used_client.add(4, 7) == 11  # the parent's connections are still whole


def test_a_handle_made_before_the_fork_is_waited_for_in_the_child_and_the_parent(used_client: TaskClient) -> None:
    handle = used_client.add.submit(5, 5)
    assert reported_by_forked_child(lambda: repr(handle.result(timeout=CALL_BOUND))) == "10"
    assert handle.result(timeout=CALL_BOUND) == 10


def test_a_child_and_its_parent_calling_at_once_each_get_their_own_records(used_client: TaskClient) -> None:
    """The parent keeps calling while the child calls: no record goes to the wrong process."""
    stop = threading.Event()
    results: list[int] = []
    failures: list[BaseException] = []

    def parent_calls() -> None:
        while not stop.is_set():
            try:
                results.append(used_client.add.with_options(timeout=CALL_BOUND)(20, 1))
            except Exception as error:
                failures.append(error)

    caller = threading.Thread(target=parent_calls)
    caller.start()
    try:
        reported = reported_by_forked_child(
            lambda: repr([used_client.add.with_options(timeout=CALL_BOUND)(i, 1) for i in range(20)])
        )
    finally:
        stop.set()
        caller.join(timeout=CALL_BOUND * 2)
    assert reported == repr([i + 1 for i in range(20)])
    assert not failures
    assert results and set(results) == {21}


def test_a_client_made_before_the_fork_serves_a_multiprocessing_child(used_client: TaskClient) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        assert pool.map_async(_add_one, range(4), chunksize=1).get(timeout=60) == [1, 2, 3, 4]
    assert used_client.add(4, 7) == 11


_client_of_this_module: TaskClient | None = None


def _add_one(number: int) -> int:
    assert _client_of_this_module is not None
    return _client_of_this_module.add.with_options(timeout=CALL_BOUND)(number, 1)


@pytest.fixture(autouse=True)
def _module_client(request: pytest.FixtureRequest) -> Iterator[None]:
    """The client a multiprocessing child finds, as it would find one made at import."""
    global _client_of_this_module
    if "used_client" in request.fixturenames:
        _client_of_this_module = request.getfixturevalue("used_client")
    yield
    _client_of_this_module = None


def test_a_client_closed_before_the_fork_stays_closed_in_the_child(broker: Broker, worker: object) -> None:
    client = TaskClient(broker.url, broker.result_backend)
    assert client.add(4, 7) == 11
    client.close()
    reported = reported_by_forked_child(lambda: repr(client.add.with_options(timeout=CALL_BOUND)(1, 2)))
    assert reported.startswith("raised ClientClosed(")


def _workflows(client: TaskClient, count: int = 30) -> str:
    return repr({(client.add.s(i, 2) | client.mul.s(10))(timeout=CALL_BOUND) - 10 * i for i in range(count)})


def test_a_parent_and_its_child_publish_workflows_at_once_each_on_its_own_connection(
    broker: Broker, worker: object
) -> None:
    """Workflows are published by Celery, whose producers kombu pools for the whole process by
    default: after the fork the child took the parent's pooled producer, and with it the parent's
    broker connection, which both then wrote to."""
    with TaskClient(broker.url, broker.result_backend) as client:
        assert _workflows(client, 1) == "{20}"
        failures: list[BaseException] = []
        results: list[str] = []

        def parent_publishes() -> None:
            try:
                results.append(_workflows(client))
            except Exception as error:
                failures.append(error)

        publisher = threading.Thread(target=parent_publishes)
        publisher.start()
        try:
            reported = reported_by_forked_child(lambda: _workflows(client))
        finally:
            publisher.join(timeout=CALL_BOUND * 6)
        assert reported == "{20}"
        assert not failures and results == ["{20}"]
        assert _workflows(client, 1) == "{20}"  # the parent's connection is still whole


def test_two_clients_on_one_broker_publish_workflows_on_connections_of_their_own(
    broker: Broker, worker: object
) -> None:
    """Closing one client closes its connections only: another client's workflows still go out."""
    first = TaskClient(broker.url, broker.result_backend)
    with TaskClient(broker.url, broker.result_backend) as second:
        assert _workflows(first, 1) == _workflows(second, 1) == "{20}"
        first.close()
        assert _workflows(second) == "{20}"
