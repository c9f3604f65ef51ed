"""Fixtures that start real processes: a redis-server and task-server workers on free ports.

`TASK_BROKER_URL`, when set, points the suite at an external Redis instead of the embedded
one. Fault tests that stop or freeze Redis always start a private one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess

from .catalog import serving


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TASK_BROKER_URL")
    if external:
        yield external
        return
    with RedisProcess(workdir=str(tmp_path_factory.mktemp("redis"))) as redis:
        redis.start()
        yield redis.url


@pytest.fixture(scope="session")
def worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    logdir = str(tmp_path_factory.mktemp("worker"))
    with WorkerProcess(redis_url, concurrency=2, logdir=logdir, **serving()) as process:
        process.start()
        yield process


@pytest.fixture
def client(redis_url: str, worker: WorkerProcess) -> Iterator[TaskClient]:
    with TaskClient(redis_url) as task_client:
        yield task_client


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test's own, free to stop, freeze or restart."""
    with RedisProcess(workdir=str(tmp_path)) as redis:
        redis.start()
        yield redis


REPO_ROOT = Path(__file__).resolve().parent.parent
