"""`--remote-control=safe`: a worker refuses the operator's remote-control commands that anyone
allowed to PUBLISH on the pidbox channel could send (docs/security.md), and keeps serving, answering
`inspect ping` and obeying genuine cancels. With the default (`all`), Celery's behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from task_client import CancelResult, TaskCancelled, TaskClient
from task_server.testing import WorkerProcess, wait_until
from tests.policies import contracts
from tests.policies.fixtures import Markers, StartWorker, markers, policy_client, start_worker

from ..catalog import serving

__all__ = ["markers", "policy_client", "start_worker"]

pytestmark = pytest.mark.e2e


@pytest.fixture
def control(redis_url: str) -> Iterator[Celery]:
    """A plain Celery app on the broker: what any client-role user can broadcast with."""
    app = Celery("outsider", broker=redis_url, set_as_current=False)
    yield app
    app.close()


def listening(control: Celery, worker: WorkerProcess) -> None:
    """Wait until the worker answers `ping`: "ready" is logged before its first turn of the event
    loop subscribes to the broadcast channel, and a broadcast published before that reaches nobody."""

    def pong() -> bool:
        return bool(control.control.inspect(destination=[worker.hostname], timeout=1).ping())

    wait_until(pong, 30, f"{worker.hostname} to answer ping")


def answer(control: Celery, worker: WorkerProcess, command: str, **arguments: Any) -> Any:
    replies = control.control.broadcast(
        command, arguments=arguments, destination=[worker.hostname], reply=True, timeout=5
    )
    assert replies, f"no reply to {command}"
    ((hostname, reply),) = replies[0].items()
    assert hostname == worker.hostname
    return reply


def test_a_safe_worker_refuses_shutdown_and_pool_shrink_and_keeps_serving(
    redis_url: str, control: Celery, tmp_path: Path
) -> None:
    with (
        WorkerProcess(
            redis_url, concurrency=2, extra_args=["--remote-control", "safe"], logdir=str(tmp_path), **serving()
        ) as worker,
        TaskClient(redis_url) as client,
    ):
        worker.start()
        listening(control, worker)
        for command, arguments in (("shutdown", {}), ("pool_shrink", {"n": 1})):
            reply = answer(control, worker, command, **arguments)
            assert "refused" in reply["error"] and "--remote-control=safe" in reply["error"], reply
            assert f"refused the remote-control command {command!r}" in worker.log()
        assert worker.alive()
        assert len(worker.children()) == 2  # not shrunk
        assert client.add(4, 7) == 11
        assert control.control.inspect(destination=[worker.hostname], timeout=5).ping() == {
            worker.hostname: {"ok": "pong"}
        }
        # A cancel of a queued call (the SDK's own broadcast) still reaches the worker.
        handle = client.add.with_options(countdown=30).submit(1, 2)
        assert handle.cancel() is CancelResult.CANCELLED
        with pytest.raises(TaskCancelled):
            handle.result(timeout=10)
        assert client.add(4, 7) == 11


def test_a_safe_worker_still_stops_a_running_interruptible_call_on_a_genuine_cancel(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    start_worker("--remote-control", "safe")
    handle = policy_client.task(contracts.hold).with_options(timeout=60).submit("held", 25)
    markers.wait_for_start("held")
    assert handle.cancel() is CancelResult.TERMINATED  # Celery's `terminate`, checked against the cancel token
    with pytest.raises(TaskCancelled):
        handle.result()


def test_by_default_a_worker_obeys_the_operator_commands(redis_url: str, control: Celery, tmp_path: Path) -> None:
    with WorkerProcess(redis_url, concurrency=2, logdir=str(tmp_path), **serving()) as worker:
        worker.start()
        listening(control, worker)
        assert "ok" in answer(control, worker, "pool_shrink", n=1)
        wait_until(lambda: len(worker.children()) == 1, 30, "the pool to shrink to one process")
        control.control.broadcast("shutdown", destination=[worker.hostname])
        wait_until(lambda: not worker.alive(), 30, "the worker to shut down")
