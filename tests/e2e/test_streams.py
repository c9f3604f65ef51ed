"""Streams of calls (`imap`, `as_completed`, sync and async) against real workers.

Order, the bound on calls in flight and cancellation are checked by what the worker and Redis
saw, never by timing: `diagnostics.hold` holds a worker until a test releases it, so "slow" and
"queued" are states the test controls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from task_client import AsyncTaskClient, InvalidArguments, TaskClient, TaskFailed
from task_contracts.wire import RESULT_KEY_PREFIX
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import diagnostics, serving

pytestmark = pytest.mark.e2e

HOLD = 20.0  # a held call ends at once when released; the bound only matters if a test fails


class Markers:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def starts(self, marker: str) -> int:
        path = self.directory / f"{marker}.starts"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def release(self, marker: str) -> None:
        (self.directory / f"{marker}.release").touch()


@pytest.fixture
def markers(tmp_path: Path) -> Markers:
    directory = tmp_path / "diagnostics"
    directory.mkdir()
    return Markers(directory)


def diagnostics_worker(url: str, markers: Markers, tmp_path: Path, concurrency: int) -> WorkerProcess:
    return WorkerProcess(
        url,
        concurrency=concurrency,
        queues=["diagnostics"],
        logdir=str(tmp_path),
        **serving({"TASK_DIAGNOSTICS_DIR": str(markers.directory)}),
    )


@pytest.fixture
def held_client(private_redis: RedisProcess, markers: Markers, tmp_path: Path) -> Iterator[TaskClient]:
    """A client of one diagnostics worker process: one held call at a time, the others wait queued."""
    with diagnostics_worker(private_redis.url, markers, tmp_path, concurrency=1) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            yield client


def revoked_records(url: str, status: str = "REVOKED") -> int:
    connection = redis.Redis.from_url(url)
    try:
        values = [connection.get(key) for key in connection.scan_iter(RESULT_KEY_PREFIX + "*")]
    finally:
        connection.close()
    return sum(1 for value in values if value and json.loads(value).get("status") == status)


def test_imap_yields_every_result_in_input_order(client: TaskClient) -> None:
    calls = ((i, i) for i in range(3000))
    assert list(client.add.imap(calls, chunk_size=7, max_in_flight=100)) == [2 * i for i in range(3000)]
    assert list(client.add.imap([(1, 2), {"x": 3, "y": 4}], chunk_size=1)) == [3, 7]


def test_imap_never_has_more_calls_in_flight_than_its_bound(client: TaskClient) -> None:
    pulled = 0

    def calls() -> Iterator[tuple[int, int]]:
        nonlocal pulled
        for i in range(500):
            pulled += 1
            yield (i, 1)

    in_flight = []
    for received, total in enumerate(client.add.imap(calls(), chunk_size=1, max_in_flight=40), start=1):
        assert total == received
        in_flight.append(pulled - received)
    assert max(in_flight) == 40  # the bound is reached, never passed
    assert pulled == 500


def test_async_imap_keeps_order_and_bound(client: TaskClient) -> None:
    pulled = 0

    def calls() -> Iterator[tuple[int, int]]:
        nonlocal pulled
        for i in range(400):
            pulled += 1
            yield (i, i)

    async def consume() -> list[int]:
        results = []
        async for total in client.aio.add.imap(calls(), chunk_size=3, max_in_flight=30):
            results.append(total)
            # The message just answered (3 calls at most) plus the window.
            assert pulled - len(results) <= 30 + 2
        return results

    assert asyncio.run(consume()) == [2 * i for i in range(400)]


def test_a_failed_call_raises_where_it_stands_or_is_yielded_in_place(client: TaskClient) -> None:
    stream = client.div.imap([(1, 2), (1, 0), (3, 1)], chunk_size=1)
    assert next(stream) == 0.5
    with pytest.raises(TaskFailed, match="ZeroDivisionError"):
        next(stream)
    outcomes = list(client.div.imap([(1, 2), (1, 0), (3, 1)], chunk_size=2, return_exceptions=True))
    assert outcomes[0] == 0.5 and isinstance(outcomes[1], TaskFailed) and outcomes[2] == 3.0


def test_an_invalid_call_is_named_by_its_index_in_the_stream(client: TaskClient) -> None:
    calls = [(1, 2)] * 5 + [("x", 1)]
    results = []
    with pytest.raises(InvalidArguments, match="item 5"):
        for total in client.add.imap(calls, chunk_size=2, max_in_flight=2):
            results.append(total)
    assert results == [3, 3, 3, 3]  # calls before it ran; it was never published


def test_as_completed_yields_in_finishing_order(private_redis: RedisProcess, markers: Markers, tmp_path: Path) -> None:
    with diagnostics_worker(private_redis.url, markers, tmp_path, concurrency=2) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            markers.release("quick")
            stream = client.task(diagnostics.hold).as_completed([("slow", HOLD), ("quick", HOLD)], chunk_size=1)
            assert next(stream) == (1, 1)  # "slow" is still held: only "quick" can have finished
            markers.release("slow")
            assert next(stream) == (0, 1)
            assert list(stream) == []


def test_async_as_completed_yields_every_index_once(client: TaskClient) -> None:
    async def consume() -> list[tuple[int, int]]:
        return [pair async for pair in client.aio.add.as_completed([(i, 1) for i in range(300)], max_in_flight=50)]

    assert sorted(asyncio.run(consume())) == [(i, i + 1) for i in range(300)]


def test_closing_an_imap_revokes_the_calls_still_queued(
    held_client: TaskClient, markers: Markers, private_redis: RedisProcess
) -> None:
    markers.release("c0")
    stream = held_client.task(diagnostics.hold).imap(((f"c{i}", HOLD) for i in range(6)), chunk_size=1, max_in_flight=3)
    assert next(stream) == 1  # c0 ran; c1 runs (held), c2 and c3 wait: c4 and c5 were never published
    wait_until(lambda: markers.starts("c1") == 1, 60, "c1 to start")
    stream.close()
    markers.release("c1")
    wait_until(lambda: revoked_records(private_redis.url) == 2, 60, "the queued calls to be revoked")
    assert [markers.starts(f"c{i}") for i in range(6)] == [1, 1, 0, 0, 0, 0]


def test_calls_cancelled_with_their_stream_never_run_on_a_worker_started_later(
    private_redis: RedisProcess, markers: Markers, tmp_path: Path
) -> None:
    url = private_redis.url
    connection = redis.Redis.from_url(url)
    for i in range(3):
        markers.release(f"q{i}")  # a call run by mistake ends at once, and shows in its marker

    async def consume() -> None:
        async with AsyncTaskClient(url) as client:
            async for _ in client.task(diagnostics.hold).imap(
                ((f"q{i}", HOLD) for i in range(3)), chunk_size=1, max_in_flight=3
            ):
                pass

    async def main() -> None:
        consumer = asyncio.create_task(consume())
        await asyncio.to_thread(wait_until, lambda: connection.llen("diagnostics") == 3, 60, "the calls to queue")
        consumer.cancel()  # no worker runs: the cancel must reach the calls where they wait, in Redis
        with pytest.raises(asyncio.CancelledError):
            await consumer

    asyncio.run(main())
    with diagnostics_worker(url, markers, tmp_path, concurrency=1) as worker:
        worker.start()
        wait_until(
            lambda: connection.llen("diagnostics") == 0 and connection.hlen("unacked") == 0,
            60,
            "the worker to take every message",
        )
    assert [markers.starts(f"q{i}") for i in range(3)] == [0, 0, 0]
    assert revoked_records(url) == 3
    connection.close()


def test_ctrl_c_in_the_loop_revokes_the_calls_still_queued(
    held_client: TaskClient, markers: Markers, private_redis: RedisProcess
) -> None:
    markers.release("k0")
    with pytest.raises(KeyboardInterrupt):
        for _ in held_client.task(diagnostics.hold).imap(
            ((f"k{i}", HOLD) for i in range(6)), chunk_size=1, max_in_flight=3
        ):
            wait_until(lambda: markers.starts("k1") == 1, 60, "k1 to start")
            raise KeyboardInterrupt  # as Ctrl-C would, while the stream waits to be resumed
    markers.release("k1")
    wait_until(lambda: revoked_records(private_redis.url) == 2, 60, "the queued calls to be revoked")
    assert [markers.starts(f"k{i}") for i in range(6)] == [1, 1, 0, 0, 0, 0]


def test_cancelling_an_async_stream_revokes_the_calls_still_queued(
    held_client: TaskClient, markers: Markers, private_redis: RedisProcess
) -> None:
    async def consume(first: asyncio.Event) -> None:
        async for _ in held_client.aio.task(diagnostics.hold).imap(
            ((f"a{i}", HOLD) for i in range(6)), chunk_size=1, max_in_flight=3
        ):
            first.set()

    async def main() -> None:
        first = asyncio.Event()
        consumer = asyncio.create_task(consume(first))
        await asyncio.wait_for(first.wait(), 60)  # a0 answered; the stream now waits on a1 (held)
        await asyncio.to_thread(wait_until, lambda: markers.starts("a1") == 1, 60, "a1 to start")
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer

    markers.release("a0")
    asyncio.run(main())
    markers.release("a1")
    wait_until(lambda: revoked_records(private_redis.url) == 2, 60, "the queued calls to be revoked")
    assert [markers.starts(f"a{i}") for i in range(6)] == [1, 1, 0, 0, 0, 0]


def test_an_abandoned_stream_costs_workers_no_admission_per_cancelled_call(
    held_client: TaskClient, markers: Markers, private_redis: RedisProcess, tmp_path: Path
) -> None:
    """issue 19: the cancelled calls of an abandoned `imap` stay queued; each used to cost the worker
    that took it an admission (a Redis round trip, a trip to a pool process, a REVOKED record stored
    again), and a fresh call waited behind thousands. Now workers drop them as they arrive."""
    count = 300
    markers.release("b0")
    stream = held_client.task(diagnostics.hold).imap(
        ((f"b{i}", HOLD) for i in range(count)), chunk_size=1, max_in_flight=count
    )
    assert next(stream) == 1
    wait_until(lambda: markers.starts("b1") == 1, 60, "b1 to start")  # held: the others wait
    stream.close()  # abandoned: every call still queued is cancelled
    markers.release("b1")
    connection = redis.Redis.from_url(private_redis.url)
    try:
        wait_until(lambda: connection.llen("diagnostics") == 0, 60, "the cancelled calls to leave the queue")
    finally:
        connection.close()
    assert held_client.task(diagnostics.sleep)(0) == 0
    log = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))  # `held_client`'s worker
    dropped = log.count("cancelled while queued; dropped on arrival")
    admitted = log.count("cancelled before it started; not run")
    # Only the few the worker had taken before the cancel went through admission.
    assert dropped + admitted == count - 2, (dropped, admitted)
    assert admitted <= 16, admitted
    assert [markers.starts(f"b{i}") for i in range(2, count)] == [0] * (count - 2)
