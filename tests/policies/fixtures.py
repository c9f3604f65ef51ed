"""Fixtures for the e2e tests of run policies: workers serving `tests.policies`, and their markers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import WorkerProcess, wait_until

CATALOG = "tests.policies.contracts:CATALOG"
IMPLEMENTATIONS = ("tests.policies.implementations",)
REPO_ROOT = Path(__file__).resolve().parents[2]


class Markers:
    """The files the policies tasks write in the workers' TASK_DIAGNOSTICS_DIR."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def starts(self, marker: str) -> int:
        path = self.directory / f"{marker}.starts"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def wait_for_start(self, marker: str, number: int = 1) -> None:
        wait_until(lambda: self.starts(marker) >= number, 30, f"start {number} of {marker}")

    def release(self, marker: str) -> None:
        (self.directory / f"{marker}.release").touch()


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def markers(tmp_path: Path) -> Markers:
    directory = tmp_path / "markers"
    directory.mkdir()
    return Markers(directory)


@pytest.fixture
def start_worker(redis_url: str, markers: Markers, tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers serving the policies catalog; every one is stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(*extra_args: str, concurrency: int = 1) -> WorkerProcess:
        process = WorkerProcess(
            redis_url,
            concurrency=concurrency,
            # The repository on PYTHONPATH: the worker imports `tests.policies` from any directory.
            env={"TASK_DIAGNOSTICS_DIR": str(markers.directory), "PYTHONPATH": str(REPO_ROOT)},
            extra_args=extra_args,
            logdir=str(tmp_path),
            catalog=CATALOG,
            implementations=IMPLEMENTATIONS,
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def policy_client(redis_url: str) -> Iterator[TaskClient]:
    with TaskClient(redis_url) as client:
        yield client


def wait_for_log(worker: WorkerProcess, text: str) -> None:
    wait_until(lambda: text in worker.log(), 30, f"{text!r} in the log of {worker.hostname}")
