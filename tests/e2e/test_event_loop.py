"""Nothing on the async path blocks the event loop on I/O: not a publish, not a wait, not a close.

A 10 ms heartbeat runs on the loop while the client's Redis is frozen for real (SIGSTOP: the
kernel accepts connections and nothing answers). Every async call fails with `BrokerUnavailable`
within its bound, and the heartbeat never stalls for 500 ms: a blocking read of the frozen broker
would stall it for the client's whole socket timeout (1 s), while a loaded 2-core machine can
deschedule a healthy loop for ~200 ms (seen once in a full run with a 100 ms limit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from task_client import AsyncTaskClient, BrokerUnavailable
from task_server.testing import RedisProcess

pytestmark = pytest.mark.e2e

BEAT = 0.01
STALL_LIMIT = 0.5  # half the socket timeout below: any blocking read on the loop exceeds it


class Heartbeat:
    """Sleeps `BEAT` over and over, recording the longest time the loop kept it waiting beyond that."""

    def __init__(self) -> None:
        self.longest_stall = 0.0
        self.beats = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(BEAT)
            self.longest_stall = max(self.longest_stall, loop.time() - before - BEAT)
            self.beats += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def fails_within(bound: float, operation: Callable[[], Awaitable[Any]]) -> BrokerUnavailable:
    started = time.monotonic()
    try:
        await operation()
    except BrokerUnavailable as error:
        took = time.monotonic() - started
        assert took < bound, f"{operation}: {took:.2f} s, more than {bound} s"
        return error
    raise AssertionError(f"{operation} did not fail")


async def subscribers(url: str, channel: str) -> int:
    def count() -> int:
        with redis.Redis.from_url(url, socket_timeout=2) as connection:
            return int(connection.pubsub_numsub(channel)[0][1])

    return await asyncio.get_running_loop().run_in_executor(None, count)


def test_a_frozen_broker_never_stalls_the_loop(private_redis: RedisProcess) -> None:
    connect_timeout, socket_timeout = 1.0, 1.0
    read_bound = connect_timeout + socket_timeout
    margin = 1.5  # a loaded machine; the bounds themselves come from the settings

    async def main() -> Heartbeat:
        heartbeat = Heartbeat()
        heartbeat.start()
        client = AsyncTaskClient(private_redis.url, connect_timeout=connect_timeout, socket_timeout=socket_timeout)
        # Healthy first: pooled connections and a live result subscription exist before the freeze.
        handle = await client.add.submit(1, 2)  # no worker: it stays pending
        wait_started = time.monotonic()
        waiting = asyncio.ensure_future(handle.result(timeout=2.0))
        deadline = time.monotonic() + 10
        while await subscribers(private_redis.url, f"celery-task-meta-{handle.id}") != 1:
            assert time.monotonic() < deadline, "the result subscription never went live"
            await asyncio.sleep(0.02)
        private_redis.freeze()
        try:
            # Publishing: a lone call, a submit, a batch. A timeout is never retried.
            await fails_within(socket_timeout + margin, lambda: client.add(1, 2))
            await fails_within(socket_timeout + margin, lambda: client.add.submit(3, 4))
            await fails_within(socket_timeout + margin, lambda: client.add.map([(1, 2), (3, 4)]))
            # Reading: one bounded read.
            await fails_within(read_bound + margin, handle.status)
            # Waiting (meanwhile): the bound (2 s, started before the freeze), then one bounded read.
            with pytest.raises(BrokerUnavailable, match="^result backend "):
                await waiting
            assert time.monotonic() - wait_started < 2.0 + read_bound + margin
            # Closing: every step bounded, and off the loop.
            started = time.monotonic()
            await client.aclose()
            assert time.monotonic() - started < 3 * 2.0 + 2.0 + margin
        finally:
            private_redis.thaw()
        await heartbeat.stop()
        return heartbeat

    heartbeat = asyncio.run(main())
    assert heartbeat.beats > 100, heartbeat.beats  # it ran throughout (several seconds)
    assert heartbeat.longest_stall < STALL_LIMIT, f"the loop stalled for {heartbeat.longest_stall * 1000:.0f} ms"
