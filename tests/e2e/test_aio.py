"""The asyncio facade against a real worker: awaited calls, handles and batches, no thread per wait."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest

from task_client import (
    AsyncTaskHandle,
    BatchFailed,
    InvalidArguments,
    TaskClient,
    TaskFailed,
    TaskTimeout,
)

from ..brokers import Broker

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]


@pytest.fixture
def idle_queue(broker: Broker) -> Iterator[str]:
    name = f"idle-{uuid.uuid4().hex[:8]}"
    yield name
    broker.delete_queue(name)


def test_await_a_call_and_a_handle(client: TaskClient) -> None:
    async def main() -> None:
        assert await client.aio.add(4, 7) == 11
        assert await client.aio.xsum(numbers=[1, 2, 3]) == 6
        handle = await client.aio.add.submit(2, 3)
        assert isinstance(handle, AsyncTaskHandle) and len(handle.id) == 36 and handle.name == "math.add"
        assert await handle == 5
        assert await handle.result(timeout=10) == 5
        assert await client.aio.add.handle(handle.id) == 5
        assert client.add.handle(handle.id).result(timeout=10) == 5  # the same call seen from the sync side

    asyncio.run(main())


def test_errors_are_the_same_as_the_sync_ones(client: TaskClient, idle_queue: str) -> None:
    async def main() -> None:
        with pytest.raises(InvalidArguments, match="x: Input should be a valid integer"):
            await client.aio.add("a", 7)  # type: ignore[arg-type]
        with pytest.raises(TaskFailed) as caught:
            await client.aio.div(1, 0)
        assert caught.value.remote_type == "ZeroDivisionError"
        handle = await client.aio.add.with_options(queue=idle_queue).submit(1, 2)
        with pytest.raises(TaskTimeout) as timed_out:
            await handle.result(timeout=0.3)
        assert timed_out.value.task_id == handle.id

    asyncio.run(main())


def test_two_thousand_concurrent_calls_from_one_loop(client: TaskClient) -> None:
    add = client.aio.add.with_options(timeout=120)

    async def main() -> list[int]:
        return await asyncio.gather(*(add(i, i) for i in range(2000)))

    assert asyncio.run(main()) == [2 * i for i in range(2000)]


def test_waiting_calls_hold_no_thread(client: TaskClient, idle_queue: str) -> None:
    idle = client.aio.add.with_options(queue=idle_queue, timeout=2)
    client.add(1, 1)  # the watcher thread exists before counting
    threads_before = threading.active_count()
    watcher = client._runtime.watcher

    async def main() -> tuple[int, list[object]]:
        calls = asyncio.gather(*(idle(i, i) for i in range(300)), return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(watcher._waiters) < 300:  # every call is published and waiting
            assert loop.time() < deadline, "calls did not start waiting"
            await asyncio.sleep(0.01)
        during = threading.active_count()
        return during, await calls

    during, outcomes = asyncio.run(main())
    assert during - threads_before <= 2  # the loop's executor (one publishing job per tick), never one per call
    assert len(outcomes) == 300 and all(isinstance(item, TaskTimeout) for item in outcomes)


def test_aio_map_and_submit_many(client: TaskClient) -> None:
    async def main() -> None:
        assert await client.aio.add.map([(i, 1) for i in range(300)], chunk_size=50) == [i + 1 for i in range(300)]
        assert await client.aio.add.map([(1, 2), {"x": 3, "y": 4}], chunk_size=1) == [3, 7]
        outcomes = await client.aio.div.map([(1, 2), (1, 0)], return_exceptions=True)
        assert outcomes[0] == 0.5 and isinstance(outcomes[1], TaskFailed)
        with pytest.raises(BatchFailed) as caught:
            await client.aio.div.map([(1, 0), (4, 2)])
        assert list(caught.value.errors) == [0] and caught.value.outcomes[1] == 2.0
        handles = await client.aio.add.submit_many([(i, i) for i in range(20)])
        assert await asyncio.gather(*handles) == [2 * i for i in range(20)]

    asyncio.run(main())


def test_aio_map_timeout_bounds_the_batch(client: TaskClient, idle_queue: str) -> None:
    async def main() -> list[object]:
        idle = client.aio.add.with_options(queue=idle_queue)
        return await idle.map([(1, 2), (3, 4)], timeout=0.3, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert len(outcomes) == 2 and all(isinstance(item, TaskTimeout) for item in outcomes)


def test_an_unreachable_broker_fails_awaited_calls_and_batches_clearly() -> None:
    from task_client import BrokerUnavailable
    from task_server.testing import free_port

    with TaskClient(f"redis://:secret@127.0.0.1:{free_port()}/0") as nowhere:

        async def main() -> list[BaseException]:
            calls = await asyncio.gather(nowhere.aio.add(1, 2), nowhere.aio.add(3, 4), return_exceptions=True)
            with pytest.raises(BrokerUnavailable) as batch:
                await nowhere.aio.add.map([(1, 2)])
            return [*calls, batch.value]

        errors = asyncio.run(main())
    assert len(errors) == 3 and all(isinstance(error, BrokerUnavailable) for error in errors), errors
    assert all("secret" not in str(error) and "***" in str(error) for error in errors)
