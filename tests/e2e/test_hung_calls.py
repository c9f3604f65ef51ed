"""One hung call must not stop a worker (issue 16): other contracts' calls keep answering within 1 s.

Real default workers (prefork, 8 threads) serve `tests.hangs`, whose `ops.lookup("hang:<marker>")`
hangs until the test releases the marker. Each call's latency is measured around the hang.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from task_client import TaskClient, TaskFailed, TaskTimeout
from task_server.testing import RedisProcess, WorkerProcess, free_port, wait_until

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

    def release(self, *markers: str) -> None:
        for marker in markers:
            (self.directory / f"{marker}.release").touch()

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


def test_two_threads_with_three_calls_hung_for_good_still_answer_other_calls(
    private_redis: RedisProcess, hangs: Hangs, tmp_path: Path
) -> None:
    with WorkerProcess(
        private_redis.url, logdir=str(tmp_path), extra_args=["--threads", "2"], **serving(hangs.directory)
    ) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            lookup, ping = client.task(ops.lookup), client.task(ops.ping)
            assert lookup("k") == "value-of-k"
            hung = [lookup.submit(f"hang:{marker}") for marker in ("e1", "e2", "e3")]
            for marker in ("e1", "e2", "e3"):
                hangs.wait_for_start(marker)
            calls = [timed(ping) for _ in range(10)] + [timed(lambda: lookup("k")) for _ in range(10)]
            assert [value for value, _ in calls] == ["pong"] * 10 + ["value-of-k"] * 10
            assert max(seconds for _, seconds in calls) < DELAY_BOUND, calls
            for handle in hung:
                with pytest.raises(TaskTimeout):
                    handle.result(timeout=0.1)
        # Its threads are hung for good: a warm shutdown would only wait out the grace (10 s) before the kill.
        worker.stop(grace=0)


def overran_count(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "task_server_tasks_overran_total" and sample.labels.get("contract") == "ops.lookup"
    )


def test_an_overrun_is_logged_once_counted_and_its_thread_replaced(
    private_redis: RedisProcess, hangs: Hangs, tmp_path: Path
) -> None:
    port = free_port()
    grace = 0.5
    with WorkerProcess(
        private_redis.url,
        logdir=str(tmp_path),
        extra_args=["--threads", "1", "--overrun-grace", str(grace), "--metrics-port", str(port)],
        **serving(hangs.directory),
    ) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            assert overran_count(port) == 0
            hung = client.task(ops.lookup).submit("hang:f")
            hangs.wait_for_start("f")
            overrun = f"ops.lookup[{hung.id}] has run"
            wait_until(lambda: overrun in worker.log(), ops.lookup.timeout + grace + SLACK, "the overrun's log line")
            assert "past its bound of 3 s and the 0.5 s grace" in worker.log()
            wait_until(lambda: overran_count(port) == 1, SLACK, "the overrun counted")
            # Its thread's place is taken: the one thread it had is free again for every other call.
            calls = [timed(client.task(ops.ping)) for _ in range(10)]
            assert max(seconds for _, seconds in calls) < DELAY_BOUND, calls
            assert worker.log().count(overrun) == 1  # logged once, however long it keeps running
            assert overran_count(port) == 1


def test_past_the_leaked_thread_cap_the_worker_restarts_and_loses_no_queued_call(
    private_redis: RedisProcess, hangs: Hangs, tmp_path: Path
) -> None:
    """One thread, at most one leaked: the second overrun restarts the worker (the same process,
    exec'd again). The calls it had taken and not started go back to the queue and are answered."""
    with WorkerProcess(
        private_redis.url,
        logdir=str(tmp_path),
        extra_args=["--threads", "1", "--overrun-grace", "0.5", "--max-leaked-threads", "1"],
        **serving(hangs.directory),
    ) as worker:
        worker.start()
        pid = worker.pid
        with TaskClient(private_redis.url) as client:
            lookup = client.task(ops.lookup).with_options(timeout=90)
            hung = [lookup.submit(f"hang:{marker}") for marker in ("g1", "g2")]  # its thread and one spare
            for marker in ("g1", "g2"):
                hangs.wait_for_start(marker)
            # Taken from the queue (prefetched): two more hangs for the threads that replace the
            # first two overruns, and three calls waiting behind them when the worker restarts.
            hung += [lookup.submit(f"hang:{marker}") for marker in ("g3", "g4")]
            waiting = [lookup.submit(f"w{n}") for n in range(3)]
            restarted = "restarting this worker"
            wait_until(lambda: restarted in worker.log(), 2 * (ops.lookup.timeout + 0.5) + SLACK, "the restart")
            wait_until(lambda: worker.log().count("task-server: ready") == 2, 60, "the worker to be ready again")
            hangs.release("g1", "g2", "g3", "g4")  # they come back as redeliveries (idempotent: run again)
            assert worker.pid == pid and worker.alive()  # exec'd in place: no supervisor needed
            assert [handle.result() for handle in waiting] == [f"value-of-w{n}" for n in range(3)]
            assert [handle.result() for handle in hung] == [f"value-of-hang:g{n}" for n in range(1, 5)]
            assert client.task(ops.ping)() == "pong"
        after_restart = worker.log().split(restarted, 1)[1]
        restored = re.search(r"Restoring (\d+) unacknowledged message", after_restart)
        assert restored is not None and int(restored.group(1)) >= len(waiting), after_restart[:2000]
        for handle in waiting:  # each received by the restarted worker, none answered before
            assert f"ops.lookup[{handle.id}] received" in after_restart.split("task-server: ready", 1)[1]
