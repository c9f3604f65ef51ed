"""Major versions of a contract are served side by side, each under its own wire name."""

from __future__ import annotations

import pytest

from task_client import TaskClient
from task_server.testing import WorkerProcess

from ..catalog import diagnostics

pytestmark = pytest.mark.e2e


def test_two_major_versions_run_side_by_side_on_one_worker(client: TaskClient, worker: WorkerProcess) -> None:
    assert (diagnostics.echo.name, diagnostics.echo_v2.name) == ("diagnostics.echo", "diagnostics.echo.v2")
    assert client.task(diagnostics.echo)("hi") == "hi"
    assert client.task(diagnostics.echo_v2)("hi", 2) == ["hi", "hi"]
    assert client.task(diagnostics.echo_v2).map([("a", 1), ("b", 2)], chunk_size=2) == [["a"], ["b", "b"]]
    (info,) = [found for found in client.workers(timeout=2) if found.hostname == worker.hostname]
    assert info.versions["diagnostics.echo"] == (1, 2)
    assert info.versions["math.add"] == (1,)
    assert info.contracts["diagnostics.echo.v2"] == diagnostics.echo_v2.fingerprint
