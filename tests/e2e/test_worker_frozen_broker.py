"""The worker's Redis frozen (SIGSTOP) while tasks run and more wait, then continued: nothing is lost.

A frozen Redis accepts connections and answers nothing. The worker sets no socket timeout on its
broker and backend connections, so it waits; once Redis continues, every result that was being
stored is stored, every queued call runs, and nothing runs twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import diagnostics, serving

pytestmark = pytest.mark.e2e

#: How long the fault lasts: a duration of the fault, not a wait for anything. Longer than the
#: client's and kombu's socket timeouts (2 s), shorter than the worker's ~10 s of store retries.
FROZEN_FOR = 4.0
QUEUED_CALLS = 50


@pytest.fixture
def diagnostics_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "diagnostics"
    directory.mkdir()
    return directory


@pytest.fixture
def worker_on_private_redis(
    private_redis: RedisProcess, diagnostics_dir: Path, tmp_path: Path
) -> Iterator[WorkerProcess]:
    env = {"TASK_DIAGNOSTICS_DIR": str(diagnostics_dir)}
    with WorkerProcess(private_redis.url, concurrency=2, logdir=str(tmp_path), **serving(env)) as worker:
        worker.start()
        yield worker


def test_a_frozen_then_continued_broker_loses_nothing_on_the_worker_side(
    private_redis: RedisProcess, worker_on_private_redis: WorkerProcess, diagnostics_dir: Path
) -> None:
    worker = worker_on_private_redis
    with TaskClient(private_redis.url) as client:
        assert client.add(1, 1) == 2  # the worker consumes
        # Two calls hold both pool processes, provably running (their start files), and more wait.
        holds = [client.task(diagnostics.hold).submit(marker, 25.0) for marker in ("frozen-a", "frozen-b")]
        for marker in ("frozen-a", "frozen-b"):
            starts = diagnostics_dir / f"{marker}.starts"
            wait_until(starts.exists, 30, f"{marker} to start on the worker")
        queued = client.add.submit_many([(i, 1000) for i in range(QUEUED_CALLS)])

        private_redis.freeze()
        try:
            # Released while Redis is frozen: both finish, and their results wait to be stored.
            for marker in ("frozen-a", "frozen-b"):
                (diagnostics_dir / f"{marker}.release").touch()
            threading.Event().wait(FROZEN_FOR)
            assert worker.alive(), worker.log()[-3000:]
        finally:
            private_redis.thaw()

        assert [handle.result(timeout=60) for handle in holds] == [1, 1]  # each started once, never again
        results = [handle.result(timeout=60) for handle in queued]
        assert len(results) == QUEUED_CALLS and results == [i + 1000 for i in range(QUEUED_CALLS)]
        assert client.add(4, 7) == 11  # and it goes on serving
    for marker in ("frozen-a", "frozen-b"):
        assert len((diagnostics_dir / f"{marker}.starts").read_text().splitlines()) == 1
    assert worker.alive()
    assert "OutcomeUnknown" not in worker.log() and "Unrecoverable error" not in worker.log()
