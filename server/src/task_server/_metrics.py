"""Prometheus metrics of a worker (`task-server worker --metrics-port N`), off unless asked for.

Per contract: tasks received, succeeded, failed, retried and refused, and their run time; per
queue the worker consumes, the number of messages waiting, read from the broker at each scrape.

A prefork worker runs its tasks in pool processes, and only there does Celery know how a task
ended (its `task_success` / `task_failure` / `task_postrun` signals fire in the process that ran
it). prometheus-client's multiprocess mode is its documented answer: every process writes its
counts to memory-mapped files in one directory, and the endpoint in the main process adds them
up. The same code serves the solo and threads pools. Cost when on: a few signal handlers per
task and a write to a memory-mapped file for each count; when off, nothing here is imported.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from celery import Celery, signals

from task_contracts import ContractCatalog
from task_contracts.wire import chunk_task_name

from ._bookkeeping import bookkeeping_malformed
from ._deliveries import task_redelivered
from ._execution import TASK_OPTIONS
from ._refusals import message_refused
from ._watched_threads import call_overran

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: Where prometheus-client's multiprocess mode keeps the counts of every process of the worker.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: Contracts run from milliseconds to a minute (`reports.count_to`): buckets up to the longest bound.
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))
#: Bound on reading the queue depths at a scrape: a frozen broker must not hold the scrape.
QUEUE_DEPTH_TIMEOUT = 1.0

LABELS = ("contract", "message")


def serve_metrics(app: Celery, catalog: ContractCatalog, queues: Sequence[str], port: int, address: str) -> None:
    """Count `app`'s contract tasks and serve the counts on `http://address:port/metrics`.

    Call it in the worker's main process before the pool starts; raises `OSError` if the port
    cannot be bound.
    """
    directory = _multiprocess_directory()
    # Imported here, after the directory is set: prometheus-client picks its storage on import.
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    _count_tasks(catalog)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(QueueDepthCollector(app, queues))
    start_http_server(port, addr=address, registry=registry)


def _multiprocess_directory() -> str:
    """The directory set by the operator, or a fresh one removed when the worker exits."""
    given = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if given:
        return given
    directory = tempfile.mkdtemp(prefix="task-server-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = directory  # inherited by the pool processes
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked pool process that runs exit handlers
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory


def _count_tasks(catalog: ContractCatalog) -> None:
    from prometheus_client import Counter, Histogram

    def counter(name: str, what: str) -> Counter:
        return Counter(f"task_server_tasks_{name}", what, LABELS)

    received = counter("received", "Messages taken from a queue for this contract (refused ones included).")
    succeeded = counter("succeeded", "Tasks that returned a value satisfying the contract.")
    failed = counter("failed", "Tasks that raised, or whose result broke the contract's result type.")
    retried = counter("retried", "Tasks started again: a Celery retry, or a redelivery after their worker was lost.")
    refused = counter(
        "refused",
        "Messages refused without running the implementation: unreadable or too large, invalid arguments, "
        "another contract fingerprint, or a start that redelivery rules forbid.",
    )
    overran = counter(
        "overran",
        "Thread-served calls still running past their bound plus --overrun-grace (each counted once); "
        "their threads are replaced.",
    )
    runtime = Histogram(
        "task_server_task_runtime_seconds", "Run time of finished tasks, in seconds.", LABELS, buckets=RUNTIME_BUCKETS
    )
    # Wire name -> label values; also the filter: tasks that serve no contract are not counted.
    labels: dict[str, tuple[str, str]] = {}
    for item in catalog:
        labels[item.name] = (item.name, "call")
        labels[chunk_task_name(item.name)] = (item.name, "chunk")
    for values in labels.values():  # every series exists from the start, at 0
        for metric in (received, succeeded, failed, retried, refused, overran, runtime):
            metric.labels(*values)
    refusals = TASK_OPTIONS["throws"]
    started: dict[str, float] = {}

    # Main process: the consumer accepted a message (task_received), or intake refused one.
    def on_received(request: Any = None, **_: Any) -> None:
        if (values := labels.get(getattr(request, "name", ""))) is not None:
            received.labels(*values).inc()

    def on_refused_message(sender: Any = None, **_: Any) -> None:
        if (values := labels.get(getattr(sender, "name", ""))) is not None:
            received.labels(*values).inc()
            refused.labels(*values).inc()

    # Pool process: the task ran there.
    def on_prerun(task_id: str = "", **_: Any) -> None:
        started[task_id] = time.monotonic()

    def on_postrun(sender: Any = None, task_id: str = "", **_: Any) -> None:
        begun = started.pop(task_id, None)
        if begun is not None and (values := labels.get(getattr(sender, "name", ""))) is not None:
            runtime.labels(*values).observe(time.monotonic() - begun)

    def on_success(sender: Any = None, **_: Any) -> None:
        if (values := labels.get(getattr(sender, "name", ""))) is not None:
            succeeded.labels(*values).inc()

    def on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        if (values := labels.get(getattr(sender, "name", ""))) is not None:
            (refused if isinstance(exception, refusals) else failed).labels(*values).inc()

    def on_retry(sender: Any = None, **_: Any) -> None:
        if (values := labels.get(getattr(sender, "name", ""))) is not None:
            retried.labels(*values).inc()

    # Main process: a call on one of its threads overran (`_watched_threads`); the sender is its name.
    def on_overran(sender: Any = None, **_: Any) -> None:
        if (values := labels.get(str(sender))) is not None:
            overran.labels(*values).inc()

    call_overran.connect(on_overran, weak=False)

    malformed = Counter(
        "task_server_bookkeeping_malformed",
        "Malformed crash-recovery entries or keys (unacked hash, index, sweep lock) removed from the broker.",
    )

    def on_malformed(**_: Any) -> None:
        malformed.inc()

    bookkeeping_malformed.connect(on_malformed, weak=False)
    signals.task_received.connect(on_received, weak=False)
    message_refused.connect(on_refused_message, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    signals.task_success.connect(on_success, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
    signals.task_retry.connect(on_retry, weak=False)
    task_redelivered.connect(on_retry, weak=False)


class QueueDepthCollector:
    """Messages waiting in each queue, read from the broker when Prometheus scrapes.

    Broker-neutral: a passive queue declaration, which kombu answers with the queue's length
    (LLEN of every priority list on Redis; the broker's count on AMQP). Bounded by
    `QUEUE_DEPTH_TIMEOUT` per connection step; `task_server_broker_up` says whether it answered.
    """

    def __init__(self, app: Celery, queues: Sequence[str], timeout: float = QUEUE_DEPTH_TIMEOUT) -> None:
        self.app = app
        self.queues = tuple(queues)
        self.timeout = timeout

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily(
            "task_server_queue_depth", "Messages waiting in a queue this worker consumes.", labels=["queue"]
        )
        up = GaugeMetricFamily("task_server_broker_up", "1 if the broker answered the queue-depth read in time.")
        try:
            for queue, count in self._depths():
                depth.add_metric([queue], count)
        except Exception:  # any broker failure: report it as a value, never fail the scrape
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            yield depth
        yield up

    def _depths(self) -> Iterator[tuple[str, int]]:
        options = {
            **(self.app.conf.broker_transport_options or {}),
            # Each transport reads the names it knows: Redis the socket_* ones, AMQP read/write.
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "read_timeout": self.timeout,
            "write_timeout": self.timeout,
            "max_retries": 0,
        }
        with self.app.connection_for_read(connect_timeout=self.timeout, transport_options=options) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=self.timeout)
            depths = []
            for queue in self.queues:
                channel = connection.channel()
                try:
                    depths.append((queue, int(channel.queue_declare(queue=queue, passive=True).message_count)))
                except connection.channel_errors:
                    # Not found: Redis deletes an empty list, so an empty queue does not exist there.
                    depths.append((queue, 0))
                finally:
                    channel.close()
            yield from depths
