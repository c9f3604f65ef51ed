"""Producers that know only a task name publish on Celery's default queue `celery`; a default worker answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from task_client import TaskClient, UnknownTask
from task_contracts import CATALOG, asyncapi_document, contract
from task_server.testing import RedisProcess, WorkerProcess

from ..brokers import Broker
from ..conftest import REPO_ROOT
from ..wire import foreign_client
from .raw_messages import json_body, push

pytestmark = pytest.mark.e2e

#: Installed by `make install` (npm package celery-node), beside @asyncapi/specs.
CELERY_NODE = REPO_ROOT / ".venv/npm/node_modules/celery-node"

NODE_PROGRAM = """
const celery = require(process.argv[1])  // with `node -e` the arguments start at argv[1];
const url = process.argv[2];
const client = celery.createClient(url, url);  // defaults: queue "celery", protocol v2, JSON
client.createTask("math.add").applyAsync([4, 7]).get(20000).then(
  (value) => { console.log(JSON.stringify({ value })); return client.disconnect(); },
  (error) => { console.log(JSON.stringify({ error: String(error) })); process.exit(1); },
);
"""


@pytest.fixture
def stock_celery(broker: Broker, worker: WorkerProcess) -> Iterator[Celery]:
    # Celery's own defaults: no task_routes, no queue option, no queue type, so every call goes to
    # `celery`, declared as Celery declares it by default (on RabbitMQ: a classic queue).
    app = Celery("plain", broker=broker.url, backend=broker.result_backend, set_as_current=False)
    yield app
    app.close()


@pytest.mark.every_broker
def test_stock_send_task_without_routing_gets_its_answer(stock_celery: Celery) -> None:
    assert stock_celery.conf.task_default_queue == "celery"
    assert stock_celery.send_task("math.add", args=[4, 7]).get(timeout=20) == 11


@pytest.mark.every_broker
def test_a_stock_call_by_a_name_the_worker_does_not_serve_fails_at_once(stock_celery: Celery) -> None:
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        stock_celery.send_task("billing.charge", args=[1]).get(timeout=30)
    assert type(caught.value).__name__ == "NotRegistered", repr(caught.value)
    assert time.monotonic() - started < 5.0  # the worker's stored answer, not the 30 s bound


def test_a_redis_and_json_producer_on_the_default_queue_gets_its_answer(redis_url: str, worker: WorkerProcess) -> None:
    document = asyncapi_document(CATALOG)
    record = foreign_client.call(redis_url, document, "math.add", [4, 7], {}, timeout=20, queue="celery")
    assert (record["status"], record["result"]) == ("SUCCESS", 11)


def test_celery_node_with_its_defaults_gets_its_answer(redis_url: str, worker: WorkerProcess) -> None:
    node = shutil.which("node")
    assert node, "node is not on PATH: the celery-node test needs Node.js (npm installs celery-node)"
    assert (CELERY_NODE / "package.json").is_file(), f"{CELERY_NODE} is missing: run `make install`"
    done = subprocess.run(
        [node, "-e", NODE_PROGRAM, str(CELERY_NODE), redis_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"value": 11}


def test_a_name_the_worker_does_not_serve_on_the_default_queue_fails_at_once(
    client: TaskClient, redis_url: str, worker: WorkerProcess
) -> None:
    task_id = push(redis_url, "billing.charge", json_body([1], {}), queue="celery")

    @contract(name="billing.charge", queue="celery", timeout=60)
    def charge(x: int) -> int: ...

    started = time.monotonic()
    with pytest.raises(UnknownTask, match=r"billing\.charge"):
        client.task(charge).handle(task_id).result(timeout=30)
    # Far below the 30 s wait: the worker's stored NotRegistered ended it, not the bound.
    assert time.monotonic() - started < 5.0


def test_no_default_queue_leaves_the_default_queue_alone(tmp_path: Path) -> None:
    with RedisProcess(workdir=str(tmp_path)) as private:
        private.start()
        with WorkerProcess(private.url, concurrency=1, extra_args=["--no-default-queue"], logdir=str(tmp_path)) as w:
            w.start()
            task_id = push(private.url, "math.add", json_body([4, 7], {}), queue="celery")
            with TaskClient(private.url) as own:
                # The worker is consuming: a call on the contract's queue is answered ...
                assert own.add(1, 2) == 3
            assert "queues math, reports\n" in w.log()
            connection = redis.Redis.from_url(private.url)
            try:
                # ... and the message on `celery` is still there, untouched.
                assert connection.llen("celery") == 1
                assert connection.get("celery-task-meta-" + task_id) is None
            finally:
                connection.close()
