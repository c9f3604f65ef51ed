"""`task-server dev`: an embedded Redis and a worker from one command, both gone after Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import DevProcess, RedisProcess, free_port, wait_until

pytestmark = pytest.mark.e2e


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"  # exited; only waiting for its new parent to reap it


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_dev_prints_the_urls_serves_calls_and_stops_both_processes(tmp_path: Path, signum: int) -> None:
    with DevProcess(logdir=str(tmp_path)) as dev:
        dev.start()
        url = dev.url
        assert url.startswith("redis://127.0.0.1:")
        assert f"export TASK_RESULT_BACKEND={url}" in dev.log()
        with TaskClient(url) as client:
            assert client.add(4, 7) == 11
        family = dev.descendants()
        assert any(_command(pid).startswith("redis-server") for pid in family), [_command(p) for p in family]
        assert len(family) >= 2  # the redis-server and the worker's pool process

        dev.signal(signum)  # the dev process only, as a terminal's Ctrl-C reaches it
        assert dev.process is not None
        dev.process.wait(timeout=60)
        wait_until(lambda: all(_gone(pid) for pid in family), 20, "the redis-server and pool processes to exit")
        assert dev.process.returncode == 0, dev.log()[-2000:]


def test_worker_says_once_which_url_it_waits_for_then_starts_when_redis_comes(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "task_server", "worker", "--concurrency", "1", "--pool", "solo"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TASK_BROKER_URL": url},
        )
        try:
            # Celery retries after 2 s, then 4 s: wait for its second retry, so "once" means something.
            wait_until(lambda: "Trying again in 4.00 seconds" in log_path.read_text(), 30, "the second retry")
            output = log_path.read_text()
            expected = f"task-server: waiting for the broker and result backend at redis://:***@127.0.0.1:{port}/0:"
            assert output.count("task-server: waiting for") == 1, output
            assert expected in output and "Connection refused" in output
            assert "s3cret" not in output

            with RedisProcess(port, workdir=str(tmp_path), extra_args=["--requirepass", "s3cret"]) as redis:
                redis.start()
                wait_until(
                    lambda: "task-server: ready" in log_path.read_text(), 60, "the worker to connect once Redis is up"
                )
                with TaskClient(url) as client:
                    assert client.add(4, 7) == 11
        finally:
            worker.terminate()
            worker.wait(timeout=30)
