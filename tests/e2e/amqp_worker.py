"""A default worker on a RabbitMQ virtual host of its own (of the session's node), with its own Redis
for results: what the AMQP hostile-input modules send their messages to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from task_server.testing import RabbitMQProcess, RedisProcess, WorkerProcess

from ..catalog import serving


@dataclass
class VhostWorker:
    url: str  # the virtual host's AMQP URL
    worker: WorkerProcess
    results_url: str  # the worker's result backend
    store: redis.Redis  # a client of it


@contextlib.contextmanager
def worker_on_own_vhost(rabbitmq: RabbitMQProcess, workdir: str, prefix: str) -> Iterator[VhostWorker]:
    """Started and serving; the virtual host is deleted afterwards, whatever the test left on it."""
    vhost, url = rabbitmq.fresh_vhost(prefix)
    try:
        with RedisProcess(workdir=workdir) as results:
            results.start()
            with (
                WorkerProcess(url, result_backend=results.url, logdir=workdir, **serving()) as worker,
                redis.Redis.from_url(results.url, socket_timeout=10) as store,
            ):
                worker.start()
                yield VhostWorker(url, worker, results.url, store)
    finally:
        rabbitmq.delete_vhost_later(vhost)
