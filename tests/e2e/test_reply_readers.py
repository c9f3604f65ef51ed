"""Who reads the reply channel (`task_client._replies`): a sync caller waiting alone reads its own
record; a caller reading hands the records of other calls to their waiters; a connection killed
under a reader is reconnected and no call is lost."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from task_client import AsyncTaskClient, TaskClient
from task_client._replies import ReplyFuture, ReplyReader
from task_contracts.wire import RESULT_KEY_PREFIX
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import serving
from .raw_messages import push_add_with_reply_to

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def killable_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis and worker of this module's own: its tests CLIENT KILL every connection of a type, which on
    the session's shared Redis also killed other tests' long-lived connections (a Celery control app's)."""
    with RedisProcess(workdir=str(tmp_path_factory.mktemp("killable-redis"))) as server:
        server.start()
        logdir = str(tmp_path_factory.mktemp("killable-worker"))
        with WorkerProcess(server.url, concurrency=2, logdir=logdir, **serving()) as process:
            process.start()
            yield server.url


@pytest.fixture
def deliveries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(thread that made the future, thread that set its result) for every reply-channel future."""
    seen: list[tuple[str, str]] = []
    made = ReplyFuture.__init__
    settle = ReplyFuture.set_result

    def init(self: ReplyFuture, replies: Any) -> None:
        made(self, replies)
        self.owner = threading.current_thread().name  # type: ignore[attr-defined]

    def set_result(self: ReplyFuture, result: Any) -> None:
        seen.append((self.owner, threading.current_thread().name))  # type: ignore[attr-defined]
        settle(self, result)

    monkeypatch.setattr(ReplyFuture, "__init__", init)
    monkeypatch.setattr(ReplyFuture, "set_result", set_result)
    yield seen


def test_a_lone_sync_call_is_read_by_its_own_thread(
    redis_url: str, worker: WorkerProcess, deliveries: list[tuple[str, str]]
) -> None:
    with TaskClient(redis_url) as client:
        for i in range(20):
            assert client.add(i, 1) == i + 1
    assert len(deliveries) == 20
    own = sum(owner == setter for owner, setter in deliveries)
    # Nearly every call: one slower than the lead period (a loaded machine) is read by the reader thread.
    assert own >= 10, deliveries


def test_a_reading_caller_hands_another_calls_record_to_its_waiter(redis_url: str, worker: WorkerProcess) -> None:
    with TaskClient(redis_url) as client:
        assert client.add(1, 1) == 2  # the reply channel is subscribed
        replies = client._runtime.watcher.replies
        # The reader thread may still be on its last slice (it read the first call's subscription).
        wait_until(lambda: not replies._reading, 10, "the reader thread to stop reading")
        mine, other = str(uuid.uuid4()), str(uuid.uuid4())
        my_future, other_future = replies.watch([mine, other], serve=False)
        setters: list[str] = []
        other_future.add_done_callback(lambda _: setters.append(threading.current_thread().name))
        # The other call's record is published, and waits in the connection, before anyone reads it.
        push_add_with_reply_to(redis_url, replies.channel, [20, 2], other)
        store = redis.Redis.from_url(redis_url)
        try:
            wait_until(lambda: store.exists(RESULT_KEY_PREFIX + other), 10, "the other call's record")
        finally:
            store.close()
        push_add_with_reply_to(redis_url, replies.channel, [1, 2], mine)
        replies.lead(my_future, 10.0)  # reads the other record first, then (most likely) its own
        assert other_future.result(10)["result"] == 22
        assert setters == [threading.current_thread().name]
        assert my_future.result(10)["result"] == 3


def test_many_threads_sharing_a_client_each_get_their_own_values(
    redis_url: str, worker: WorkerProcess, deliveries: list[tuple[str, str]]
) -> None:
    failures: list[BaseException] = []

    def caller(base: int) -> None:
        try:
            for i in range(25):
                assert client.add(base, i) == base + i
        except BaseException as error:
            failures.append(error)

    with TaskClient(redis_url) as client:
        threads = [threading.Thread(target=caller, args=(1000 * n,), name=f"caller-{n}") for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert not failures
    assert len(deliveries) == 200


def test_a_call_longer_than_the_lead_period_is_handed_to_the_reader_thread(
    redis_url: str, worker: WorkerProcess
) -> None:
    with TaskClient(redis_url) as client:
        assert client.count_to(4, delay=0.05) == 4  # about 0.2 s: four lead periods
        assert client.add(4, 7) == 11


@pytest.mark.parametrize("killed", ["pubsub", "normal"])
def test_a_call_after_the_clients_connections_were_killed_succeeds(killable_url: str, killed: str) -> None:
    with TaskClient(killable_url) as client:
        admin = redis.Redis.from_url(killable_url)
        try:
            for round_ in range(3):
                assert client.add(round_, 1) == round_ + 1
                admin.client_kill_filter(_type=killed, skipme=True)
            assert client.add(4, 7) == 11
        finally:
            admin.close()


def test_a_connection_killed_while_a_caller_waits_loses_no_call(killable_url: str) -> None:
    with TaskClient(killable_url) as client:
        assert client.add(1, 1) == 2
        replies = client._runtime.watcher.replies
        answer: list[Any] = []
        waiting = threading.Thread(target=lambda: answer.append(client.count_to(10, delay=0.05)))
        waiting.start()
        wait_until(lambda: bool(replies._waiters), 10, "the call to wait")
        admin = redis.Redis.from_url(killable_url)
        try:
            admin.client_kill_filter(_type="pubsub", skipme=True)
        finally:
            admin.close()
        waiting.join(60)
        assert answer == [10]
        assert client.add(4, 7) == 11  # and the next call is read again


def test_async_calls_waiting_while_the_reply_connection_is_killed_all_get_their_values(killable_url: str) -> None:
    """Async callers never read the connection themselves: the reader thread reconnects for them."""

    async def main() -> list[int]:
        async with AsyncTaskClient(killable_url) as client:
            assert await client.add(1, 1) == 2
            calls = [asyncio.ensure_future(client.count_to(6, delay=0.05)) for _ in range(3)]
            replies = client._runtime.watcher.replies
            deadline = asyncio.get_running_loop().time() + 10
            while len(replies._waiters) < 3:
                assert asyncio.get_running_loop().time() < deadline, "the calls never started waiting"
                await asyncio.sleep(0.01)
            with redis.Redis.from_url(killable_url) as admin:
                admin.client_kill_filter(_type="pubsub", skipme=True)
            values = list(await asyncio.gather(*calls))
            values.append(await client.add(4, 7))
            return values

    assert asyncio.run(main()) == [6, 6, 6, 11]


def test_the_next_calls_future_is_made_while_a_call_waits(
    redis_url: str, worker: WorkerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made after the LPUSH (`ReplyReader.make_spare`), used by one watch only."""
    with TaskClient(redis_url) as client:
        assert client.add(1, 1) == 2
        replies = client._runtime.watcher.replies
        (spare,) = replies._futures.waiting()
        led: list[ReplyFuture] = []
        lead = ReplyReader.lead

        def noted(self: ReplyReader, future: ReplyFuture, timeout: float | None) -> None:
            led.append(future)
            lead(self, future, timeout)

        monkeypatch.setattr(ReplyReader, "lead", noted)
        assert client.add(2, 2) == 4
        assert led == [spare]
        assert len(replies._futures.waiting()) == 1 and replies._futures.waiting()[0] is not spare
        assert not replies._futures.waiting()[0].done()
