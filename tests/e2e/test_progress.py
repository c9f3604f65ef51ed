"""Progress reported by a running task, seen through `handle.progress`."""

from __future__ import annotations

import concurrent.futures

import pytest

from task_client import Progress, TaskClient
from task_server.testing import wait_until

pytestmark = pytest.mark.e2e


def test_handle_progress_reads_the_latest_report(client: TaskClient) -> None:
    # 1.5 s per step: after the first report the task runs 4.5 s more, ample on a loaded machine
    # for the reads below to see it still in progress.
    handle = client.count_to.submit(4, delay=1.5)
    wait_until(lambda: (report := handle.progress) is not None and report.done >= 1, 30, "progress 1/4")
    report = handle.progress
    assert isinstance(report, Progress)
    assert report.total == 4 and report.message == f"counted to {report.done}"
    assert handle.status == "PROGRESS"
    assert handle.result(timeout=40) == 4
    assert handle.progress is None  # finished: the result replaced the report in the backend


def test_progress_while_a_result_wait_runs_comes_from_the_watcher(client: TaskClient) -> None:
    handle = client.count_to.submit(5, delay=0.3)
    watcher = client._runtime.watcher
    seen: list[Progress] = []
    remembered = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(handle.result, 30)

        def finished() -> bool:
            remembered.append(watcher.latest(handle.id))
            report = handle.progress
            if report is not None and (not seen or seen[-1] != report):
                seen.append(report)
            return waiting.done()

        wait_until(finished, 40, "count_to(5) to finish")
        assert waiting.result() == 5
    assert seen, "no progress seen while waiting"
    assert [report.done for report in seen] == sorted({report.done for report in seen})  # only forward
    assert all(report.total == 5 for report in seen)
    assert any(record is not None and record["status"] == "PROGRESS" for record in remembered)
    assert watcher.latest(handle.id) is None  # forgotten once the result arrived
