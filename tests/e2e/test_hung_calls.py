"""One hung call must not stop a worker (issue 16): other contracts' calls keep answering within 1 s.

Real default workers (prefork, 8 threads) serve `tests.hangs`, whose `ops.lookup("hang:<marker>")`
hangs until the test releases the marker. Each call's latency is measured around the hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from task_client import TaskClient, TaskFailed, TaskTimeout
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..hangs import contracts as ops
from ..hangs import serving

pytestmark = pytest.mark.e2e

#: The most a hung call may delay a call of another contract (the issue's bound).
DELAY_BOUND = 1.0
#: Slack for a loaded machine on waits that are not the property under test.
SLACK = 10.0


class Hangs:
    """The markers of `tests.hangs`: which hung calls started, and their release."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def started(self, marker: str) -> bool:
        return (self.directory / f"{marker}.started").exists()

    def wait_for_start(self, marker: str) -> None:
        wait_until(lambda: self.started(marker), 30, f"the hung call {marker} to start")

    def release_all(self) -> None:
        for started in self.directory.glob("*.started"):
            started.with_suffix(".release").touch()


@pytest.fixture
def hangs(tmp_path: Path) -> Iterator[Hangs]:
    directory = tmp_path / "markers"
    directory.mkdir()
    markers = Hangs(directory)
    try:
        yield markers
    finally:
        markers.release_all()  # the worker's threads end, so it stops at once


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    value = call()
    return value, time.monotonic() - started


def test_a_hung_lookup_after_many_quick_ones_delays_no_ping(
    private_redis: RedisProcess, hangs: Hangs, tmp_path: Path
) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving(hangs.directory)) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            lookup, ping = client.task(ops.lookup), client.task(ops.ping)
            # Quick 60 times in a row: that alone must not move the contract onto the event loop.
            assert [lookup(f"k{n}") for n in range(60)] == [f"value-of-k{n}" for n in range(60)]
            hung = lookup.submit("hang:a")
            hangs.wait_for_start("a")
            pings = [timed(ping) for _ in range(10)]
            assert [value for value, _ in pings] == ["pong"] * 10
            assert max(seconds for _, seconds in pings) < DELAY_BOUND, pings
            with pytest.raises(TaskTimeout):  # the caller's bound holds (next test: when)
                hung.result()
            assert lookup("k60") == "value-of-k60"  # the contract itself still answers on another thread
        assert "event loop" not in worker.log()


def test_the_callers_bound_of_a_hung_call_is_its_contracts(
    private_redis: RedisProcess, hangs: Hangs, tmp_path: Path
) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving(hangs.directory)) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            hung = client.task(ops.lookup).submit("hang:b")
            hangs.wait_for_start("b")
            started = time.monotonic()
            with pytest.raises(TaskTimeout):
                hung.result()
            assert ops.lookup.timeout - 0.1 <= time.monotonic() - started < ops.lookup.timeout + SLACK


def test_a_hung_call_in_a_pool_process_delays_no_other_contract(
    private_redis: RedisProcess, hangs: Hangs, tmp_path: Path
) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving(hangs.directory)) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            size, ping = client.task(ops.size), client.task(ops.ping)
            assert [size("x" * n) for n in range(20)] == list(range(20))
            hung = client.task(ops.crunch).submit("hang:c")
            hangs.wait_for_start("c")
            calls = [timed(lambda: size("abc")) for _ in range(10)] + [timed(ping) for _ in range(5)]
            assert [value for value, _ in calls] == [3] * 10 + ["pong"] * 5
            assert max(seconds for _, seconds in calls) < DELAY_BOUND, calls
            with pytest.raises((TaskTimeout, TaskFailed)):
                hung.result()


def test_a_hung_pool_call_is_killed_at_its_contracts_bound(
    private_redis: RedisProcess, hangs: Hangs, tmp_path: Path
) -> None:
    """Prefork keeps Celery's hard time limit, set from the contract's bound (2 s for ops.crunch)."""
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving(hangs.directory)) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            before = set(worker.children())
            hung = client.task(ops.crunch).submit("hang:d")
            hangs.wait_for_start("d")
            killed = f"Hard time limit ({ops.crunch.timeout}s) exceeded for ops.crunch[{hung.id}]"
            wait_until(lambda: killed in worker.log(), ops.crunch.timeout + SLACK, "the hard time limit")
            with pytest.raises(TaskFailed) as failure:
                hung.result(timeout=SLACK)
            assert failure.value.remote_type == "TimeLimitExceeded"
            wait_until(lambda: len(set(worker.children()) - before) == 1, SLACK, "a new pool process")
            assert client.task(ops.crunch)("k") == "value-of-k"
