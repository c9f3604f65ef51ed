"""Fault 3: a worker killed with SIGKILL mid-task, as a whole or only its pool process.

The task is never lost: an idempotent one runs again (on Redis after the visibility timeout when
the whole worker died, on RabbitMQ as soon as its connection closed; at once when only its pool
process did) and the waiting client gets its
result; a non-idempotent one is never started twice and its client gets `OutcomeUnknown`;
redelivery is capped. A `diagnostics.hold` task marks each start in a file and holds until
released, so the test kills it while it is provably running, without sleeping.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from task_client import OutcomeUnknown, TaskClient, TaskFailed
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..brokers import Broker
from ..catalog import diagnostics, serving

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]

VISIBILITY_TIMEOUT = 5  # seconds; the client's bound below is far longer than the redelivery
CLIENT_BOUND = 60.0
HOLD_SECONDS = 25.0  # the hold ends at once when released; the bound only matters if a test fails


class Markers:
    """The files `diagnostics.hold` writes in the worker's TASK_DIAGNOSTICS_DIR."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def starts(self, marker: str) -> int:
        path = self.directory / f"{marker}.starts"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def pids(self, marker: str) -> list[int]:
        """The pool process of each start, in order."""
        return [int(line) for line in (self.directory / f"{marker}.starts").read_text().split()]

    def wait_for_start(self, marker: str, number: int) -> None:
        wait_until(lambda: self.starts(marker) >= number, 60, f"start {number} of {marker}")

    def release(self, marker: str) -> None:
        (self.directory / f"{marker}.release").touch()


@pytest.fixture
def markers(tmp_path: Path) -> Markers:
    directory = tmp_path / "diagnostics"
    directory.mkdir()
    return Markers(directory)


@pytest.fixture
def start_worker(markers: Markers, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers that serve diagnostics; every one is stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(broker: Broker, *extra_args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        process = WorkerProcess(
            broker.url,
            result_backend=broker.result_backend,
            concurrency=1,
            extra_args=extra_args,
            logdir=str(tmp_path),
            **serving({"TASK_DIAGNOSTICS_DIR": str(markers.directory), **(env or {})}),
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def kill_whole_worker(worker: WorkerProcess) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    assert worker.process is not None
    worker.process.wait(timeout=10)


def kill_pool_child(worker: WorkerProcess) -> None:
    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)


def waiting_call(client: TaskClient, name: str, marker: str) -> concurrent.futures.Future[Any]:
    """The blocking call a client makes, running in a thread so the test can inject the fault."""
    remote = client.task(getattr(diagnostics, name)).with_options(timeout=CLIENT_BOUND)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(remote, marker, HOLD_SECONDS)
    pool.shutdown(wait=False)
    return future


def test_idempotent_task_runs_again_after_the_whole_worker_is_killed(
    private_broker: Broker, start_worker: Callable[..., WorkerProcess], markers: Markers
) -> None:
    vis = ("--visibility-timeout", str(VISIBILITY_TIMEOUT))
    first = start_worker(private_broker, *vis)
    with TaskClient(private_broker.url, private_broker.result_backend) as client:
        call = waiting_call(client, "hold", "whole")
        markers.wait_for_start("whole", 1)
        kill_whole_worker(first)
        markers.release("whole")
        # The worker comes back, configured from the environment this time.
        second = start_worker(private_broker, env={"TASK_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)})
        # The second start answered the waiting client within its 60 s bound: kombu's own sweep
        # would have taken about 100 s.
        assert call.result(timeout=CLIENT_BOUND + 10) == 2
    assert "start 2 of at most 3 after its worker was lost" in second.log()
    # The short visibility timeout of this test is below the contracts' bounds: the worker says so on
    # Redis. RabbitMQ has no visibility timeout: it redelivers as soon as the worker's connection closes.
    warning = "warning: visibility timeout 5 s is not longer than math.add's bound (10 s)"
    for worker in (first, second):
        assert (warning in worker.log()) == (private_broker.kind == "redis")


def test_idempotent_task_moves_to_another_running_worker_when_its_worker_is_killed(
    private_broker: Broker, start_worker: Callable[..., WorkerProcess], markers: Markers
) -> None:
    vis = ("--visibility-timeout", str(VISIBILITY_TIMEOUT))
    workers = [start_worker(private_broker, *vis), start_worker(private_broker, *vis)]
    with TaskClient(private_broker.url, private_broker.result_backend) as client:
        call = waiting_call(client, "hold", "moved")
        markers.wait_for_start("moved", 1)
        (running,) = [w for w in workers if markers.pids("moved")[0] in w.children()]
        (survivor,) = [w for w in workers if w is not running]
        kill_whole_worker(running)
        markers.release("moved")
        assert call.result(timeout=CLIENT_BOUND + 10) == 2
    assert markers.pids("moved")[1] in survivor.children()


def test_idempotent_task_runs_again_when_only_its_pool_process_is_killed(
    private_broker: Broker, start_worker: Callable[..., WorkerProcess], markers: Markers
) -> None:
    worker = start_worker(private_broker)  # default visibility timeout: requeued at once anyway
    with TaskClient(private_broker.url, private_broker.result_backend) as client:
        call = waiting_call(client, "hold", "child")
        markers.wait_for_start("child", 1)
        kill_pool_child(worker)
        markers.wait_for_start("child", 2)
        markers.release("child")
        assert call.result(timeout=CLIENT_BOUND + 10) == 2
    assert "start 2 of at most 3 after its worker was lost" in worker.log()


def test_redelivery_is_capped(
    private_broker: Broker, start_worker: Callable[..., WorkerProcess], markers: Markers
) -> None:
    worker = start_worker(private_broker, "--max-deliveries", "2")
    with TaskClient(private_broker.url, private_broker.result_backend) as client:
        call = waiting_call(client, "hold", "poison")
        for start in (1, 2):
            markers.wait_for_start("poison", start)
            wait_until(lambda: len(worker.children()) == 1, 30, "a pool process")
            kill_pool_child(worker)
        with pytest.raises(TaskFailed) as caught:
            call.result(timeout=CLIENT_BOUND + 10)
    assert caught.value.remote_type == "DeliveryLimitExceeded"
    assert "started 2 times" in caught.value.remote_message
    assert markers.starts("poison") == 2  # the third delivery did not run it


@pytest.mark.parametrize("kill", [kill_whole_worker, kill_pool_child], ids=["whole-worker", "pool-child"])
def test_non_idempotent_task_is_never_started_twice_and_reports_outcome_unknown(
    private_broker: Broker,
    start_worker: Callable[..., WorkerProcess],
    markers: Markers,
    kill: Callable[[WorkerProcess], None],
) -> None:
    vis = ("--visibility-timeout", str(VISIBILITY_TIMEOUT))
    worker = start_worker(private_broker, *vis)
    with TaskClient(private_broker.url, private_broker.result_backend) as client:
        call = waiting_call(client, "hold_once", "once")
        markers.wait_for_start("once", 1)
        kill(worker)
        markers.release("once")
        if not worker.alive():
            start_worker(private_broker, *vis)
        with pytest.raises(OutcomeUnknown) as caught:
            call.result(timeout=CLIENT_BOUND + 10)
    assert caught.value.contract == "diagnostics.hold_once" and caught.value.task_id
    assert "not idempotent" in caught.value.remote_message
    assert markers.starts("once") == 1


def test_a_result_that_cannot_be_stored_is_outcome_unknown(
    private_broker: Broker, start_worker: Callable[..., WorkerProcess], markers: Markers, tmp_path: Path
) -> None:
    (tmp_path / "backend-1").mkdir()
    backend = RedisProcess(workdir=str(tmp_path / "backend-1")).start()  # results live apart from the broker
    try:
        apart = Broker(private_broker.kind, private_broker.url, backend.url)
        worker = start_worker(apart)
        with TaskClient(apart.url, apart.result_backend) as client:
            call = waiting_call(client, "hold", "unstored")
            markers.wait_for_start("unstored", 1)
            backend.stop()  # the result backend goes away while the task runs
            markers.release("unstored")
            # The worker retries the store for about 10 s, then records the outcome as unknown.
            wait_until(lambda: "its result could not be stored" in worker.log(), 90, "the store to give up")
            (tmp_path / "backend-2").mkdir()
            backend = RedisProcess(backend.port, workdir=str(tmp_path / "backend-2")).start()
            with pytest.raises(OutcomeUnknown) as caught:
                call.result(timeout=CLIENT_BOUND + 30)
        assert "could not be stored" in caught.value.remote_message
        assert markers.starts("unstored") == 1
    finally:
        backend.stop()
