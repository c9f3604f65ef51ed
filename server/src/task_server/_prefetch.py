"""How many messages the worker reserves ahead: Celery's `worker_prefetch_multiplier`, by broker.

Celery reserves `multiplier x processes` messages (4 per pool process by default) and counts none
for the threads that serve contracts declared `cpu_bound=False` in the main process (`_threads`).
On RabbitMQ a reserved message holds its place in that window from its delivery until the broker
has settled its late ack, which on a quorum queue is a Raft command, committed to disk before the
place is given back. With Celery's 8 places for 2 processes, 32 concurrent callers left about 24
messages ready but undelivered in the queue while the worker's main process waited in epoll 63% of
the time (measured with a passive `queue.declare` every 50 ms and py-spy). So on RabbitMQ, with no
multiplier given, each such thread reserves its 4 as a process does. An explicit multiplier is
taken as Celery takes it (1 still makes the order of reserved messages strict). Redis keeps
Celery's count: its rows were measured with it, and its batch pops take the room the window leaves.
"""

from __future__ import annotations

import math
import os

from task_contracts import ContractCatalog

from ._settings import WorkerSettings

#: Celery's default `worker_prefetch_multiplier`: messages each pool process reserves ahead.
CELERY_PREFETCH_MULTIPLIER = 4


def prefetch_multiplier(settings: WorkerSettings, catalog: ContractCatalog) -> int:
    """The `worker_prefetch_multiplier` to give Celery (which multiplies it by the processes)."""
    if settings.prefetch_multiplier is not None:
        return settings.prefetch_multiplier
    threads = serving_threads(settings, catalog)
    if not settings.urls.broker_is_amqp or not threads:
        return CELERY_PREFETCH_MULTIPLIER
    processes = pool_processes(settings)
    return math.ceil(CELERY_PREFETCH_MULTIPLIER * (processes + threads) / processes)


def serving_threads(settings: WorkerSettings, catalog: ContractCatalog) -> int:
    """Threads of the main process that serve contracts (none without a contract declared cpu_bound=False)."""
    if settings.pool != "prefork" or not any(not item.cpu_bound for item in catalog):
        return 0
    return max(settings.threads, 0)


def pool_processes(settings: WorkerSettings) -> int:
    """The most pool processes Celery multiplies the multiplier by (its default: one per CPU)."""
    if settings.autoscale:
        return max(settings.autoscale[0], 1)
    return max(settings.concurrency or os.cpu_count() or 1, 1)
