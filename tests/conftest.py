"""Fixtures that start real processes: a redis-server, a RabbitMQ node and task-server workers.

`TASK_BROKER_URL`, when set, points the suite at an external Redis instead of the embedded
one. Fault tests that stop or freeze Redis always start a private one.

Brokers: a test module marked `every_broker` runs once per broker (`broker` is then Redis, then
RabbitMQ, each with Redis as the result backend); other modules run on Redis only. One RabbitMQ
node serves the whole session, started the first time a test needs it; a test that wants a
RabbitMQ broker of its own gets a fresh virtual host on it (`private_broker`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from task_client import TaskClient
from task_server.testing import RabbitMQProcess, RedisProcess, WorkerProcess

from . import parallel
from .brokers import BROKERS, Broker
from .catalog import serving


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "every_broker: run the module's tests once on Redis and once on RabbitMQ")
    parallel.make_run_dir(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    parallel.clean_up(config)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parallel.record_duration(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    parallel.save_durations(session.config)


@pytest.hookimpl(trylast=True)  # the node ids as the controller receives them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    parallel.write_groups(config, items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    parallel.launch_rabbitmq_if_needed(ids)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    return parallel.make_scheduler(config, log) if config.getoption("dist") == "loadgroup" else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that uses `broker` is parametrized (Redis only, unless marked) so that pytest
    # groups the session's tests by broker and starts each broker's worker once.
    if "broker" in metafunc.fixturenames:
        kinds = BROKERS if metafunc.definition.get_closest_marker("every_broker") else ("redis",)
        metafunc.parametrize("broker", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TASK_BROKER_URL")
    if external:
        yield _database_of_this_process(external)
        return
    with RedisProcess(workdir=str(tmp_path_factory.mktemp("redis"))) as redis:
        redis.start()
        yield redis.url


def _database_of_this_process(url: str) -> str:
    """Under pytest-xdist, test process N uses database `db + N` of an external Redis: queues and
    keys stay apart as they do with one redis-server per process."""
    number = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + number
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQProcess]:
    """One throwaway RabbitMQ node for the session (Debian's rabbitmq-server; a test fails without it).

    Parallel runs share one node (tests/parallel.py); each test process has virtual hosts of its own.
    """
    shared = parallel.shared_rabbitmq()
    if shared is not None:
        yield shared
        shared.reap()  # this process's own `rabbitmqctl` calls; the node is its launcher's to stop
        return
    with RabbitMQProcess(workdir=str(tmp_path_factory.mktemp("rabbitmq"))) as node:
        node.start()
        yield node


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest, redis_url: str) -> Broker:
    """The session's broker: `redis_url` itself, or the session RabbitMQ node with Redis for results."""
    if request.param == "redis":
        return Broker("redis", redis_url, redis_url)
    node: RabbitMQProcess = request.getfixturevalue("rabbitmq")
    _, url = node.fresh_vhost("session")  # one per test process on a shared node
    return Broker("rabbitmq", url, redis_url, node)


@pytest.fixture(scope="session")
def worker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    logdir = str(tmp_path_factory.mktemp("worker"))
    with WorkerProcess(
        broker.url, concurrency=2, logdir=logdir, result_backend=broker.result_backend, **serving()
    ) as process:
        process.start()
        yield process


@pytest.fixture
def client(broker: Broker, worker: WorkerProcess) -> Iterator[TaskClient]:
    with TaskClient(broker.url, broker.result_backend) as task_client:
        yield task_client


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test's own, free to stop, freeze or restart."""
    with RedisProcess(workdir=str(tmp_path)) as redis:
        redis.start()
        yield redis


@pytest.fixture
def private_broker(broker: Broker, tmp_path: Path) -> Iterator[Broker]:
    """A broker and result backend of this test's own, for workers it starts and kills itself.

    Redis: a redis-server of its own (also the result backend). RabbitMQ: a fresh virtual host on
    the session node (its queues are its own) and a redis-server of its own for results.
    """
    with RedisProcess(workdir=str(tmp_path)) as redis:
        redis.start()
        if broker.kind == "redis":
            yield Broker("redis", redis.url, redis.url)
            return
        node = broker.node
        assert node is not None
        vhost, url = node.fresh_vhost()
        yield Broker("rabbitmq", url, redis.url, node)
        node.delete_vhost_later(vhost)  # the next test need not wait for it


REPO_ROOT = Path(__file__).resolve().parent.parent
