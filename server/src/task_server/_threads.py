"""Contracts declared `cpu_bound=False` are served from threads of the worker's main process.

A prefork worker hands every task to a pool process and back: pipe writes, reads and context
switches each way, the largest single cost of a small call's round trip on the worker (measured
with `bench --profile`). A task that holds no CPU for long (I/O, or microseconds of work) gains
nothing from a process of its own, so the main process runs it on one of `--threads` threads,
through a Celery pool (`_watched_threads`) and Celery's usual request life cycle (acks late, events, results).
CPU-bound contracts, the default, still go to the process pool: safe for long computations and
killed at their hard time limit. A thread cannot be killed, so a contract served from threads is
not stopped at its timeout (its callers still stop waiting); the threads are watched instead
(`_watched_threads`): a hung call costs its own thread, not the others' calls. Contracts whose
author declared `on_event_loop=True` run on the event loop itself (`_inline`).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from celery import Celery, signals
from celery.worker.request import Request
from celery.worker.state import reserved_requests, revoked, task_reserved
from kombu.asynchronous import get_event_loop

from ._admission import ask_early
from ._grouped_acks import LOOP_ACK_DELAY, acks, groups_acks
from ._inline import running_on_the_loop
from ._internals.worker import custom_headers, task_processor
from ._restart import request_restart
from ._unacked import flush_held
from ._watched_threads import DEFAULT_MAX_LEAKED_THREADS, DEFAULT_OVERRUN_GRACE, WatchedThreads

logger = logging.getLogger(__name__)

#: `app.conf` key: threads serving non-CPU-bound contracts in the main process (0: none, use the pool).
THREADS_SETTING = "task_sdk_threads"
DEFAULT_THREADS = 8
#: `app.conf` keys: seconds past its bound before a thread-served call overran, and how many threads
#: held by overruns the worker tolerates (`--overrun-grace`, `--max-leaked-threads`).
OVERRUN_GRACE_SETTING = "task_sdk_overrun_grace"
MAX_LEAKED_SETTING = "task_sdk_max_leaked_threads"

#: Dotted path of the request class of the tasks this process serves from its threads (`Task.Request`).
IN_PROCESS_REQUEST = f"{__name__}:InProcessRequest"

_pools: weakref.WeakKeyDictionary[Celery, WatchedThreads] = weakref.WeakKeyDictionary()

#: Names of the tasks whose messages `ServedByThreads` hands on: it writes their held unacked
#: entries itself, with their admission when it can (`_unacked`), so the consumer need not first.
served_by_threads: set[str] = set()


def served_by_this_process(app: Celery, cpu_bound: bool) -> bool:
    """Whether a contract's calls run in the worker's main process (its threads, or its event loop)."""
    return not cpu_bound and int(app.conf.get(THREADS_SETTING) or 0) >= 1


class InProcessRequest(Request):  # type: ignore[misc]
    """Celery's request, handing its pool the body as already decoded for it, and the task
    context's custom headers sorted out once.

    Celery gives its pool a message's raw body, for a pool process to decode, although it has
    decoded it once already to make the request (kombu keeps that on the message). A pool in this
    process would decode it a second time (kombu's `loads`, a JSON decode with its object hook);
    it takes the decoded `[args, kwargs, embed]` instead, as Celery hands over a protocol-v1 body.
    The task context Celery builds from the request dict sorts its custom headers out of the
    dict's fields on every run; they are found here once, by the same rule, from the same fields.
    """

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        fields = self.request_dict
        embed = self.body[2]
        # As the tracer builds the context: the request dict, then the body's embedded fields.
        context_fields = {**fields, **embed} if isinstance(embed, dict) else fields
        if context_fields.get("headers") is None:
            fields["headers"] = custom_headers(context_fields)

    def acknowledge(self) -> None:
        """Celery's, except that on RabbitMQ the ack joins the loop's queue of acks (`_grouped_acks`),
        a call run on the loop's a little later (`LOOP_ACK_DELAY`), and that elsewhere a call run on
        the event loop is acknowledged at once rather than on the loop's next turn: Celery defers an
        ack (`call_soon_ack`) because a pool may finish a call on another thread; on the loop's own
        thread that turn comes before the next pop anyway, and the deferral cost a callback object,
        the hub's queue and a turn's dispatch (see the commit)."""
        request: Any = self  # Celery's request (untyped)
        if request.acknowledged or _chained(request.on_ack):
            super().acknowledge()
            return
        on_the_loop = running_on_the_loop()
        if groups_acks(request.message):
            hub = get_event_loop()
            if hub is not None:  # sent by the loop with the others queued by then
                acks.add(hub, request.message, request.connection_errors, LOOP_ACK_DELAY if on_the_loop else 0.0)
                request.acknowledged = True
                return
        if on_the_loop:
            request.message.ack_log_error(logger, request.connection_errors)  # what Celery's deferred ack runs
            request.acknowledged = True
            return
        super().acknowledge()

    @property
    def body(self) -> Any:
        if super().content_type is None:  # decoded by Celery already (a converted protocol-v1 body)
            return super().body
        return self.message.payload

    @property
    def content_type(self) -> None:
        return None

    @property
    def content_encoding(self) -> None:
        return None


def thread_pool(app: Celery) -> WatchedThreads | None:
    """The app's thread pool, started on first use; None when the worker serves every task from its pool."""
    size = int(app.conf.get(THREADS_SETTING) or 0)
    if size < 1:
        return None
    pool = _pools.get(app)
    if pool is None:
        grace = app.conf.get(OVERRUN_GRACE_SETTING)
        max_leaked = app.conf.get(MAX_LEAKED_SETTING)
        pool = _pools[app] = WatchedThreads(
            size,
            app,
            grace=DEFAULT_OVERRUN_GRACE if grace is None else float(grace),
            max_leaked=DEFAULT_MAX_LEAKED_THREADS if max_leaked is None else int(max_leaked),
            on_too_many_leaked=request_restart,
        )
        pool.start()

        def stop(**_: Any) -> None:
            pool.stop()

        def drain(**_: Any) -> None:
            pool.drain()  # a warm shutdown starts no more calls, as the process pool does

        signals.worker_shutting_down.connect(drain, weak=False)
        signals.worker_shutdown.connect(stop, weak=False)
    return pool


class ServedByThreads:
    """The worker's consumer as Celery's default strategy sees it, except that its pool is `pool`.

    The strategy builds each request class around `consumer.pool.apply_async`. A prefork worker
    hands requests over through a semaphore that only its process pool releases, so requests for
    threads skip it (prefetch still bounds them). Everything else (events, revokes, rate limits)
    stays the consumer's own.
    """

    def __init__(self, consumer: Any, pool: Any) -> None:
        self._consumer = consumer
        self.pool = pool
        self._process_task = task_processor(consumer)

    def on_task_request(self, request: Any) -> None:
        """Hand a request to the threads; when one is free to start it now, ask for its admission
        on the way (`_preadmission`). Received and unfinished requests include it and any other
        request of this worker, so a free thread is counted conservatively."""
        # Not for a call that `_process_task` drops below (revoked in its memory, e.g. while held for its
        # eta): its admission would start it (start counted, running mark, concurrency slot) for nothing.
        dropped = request.id in revoked and request.revoked()
        if not request.expires and not dropped and len(reserved_requests) <= self.pool.limit:
            try:
                ask_early(request)
            except self._consumer.connection_errors:
                raise  # the message's unacked entry went in the same write: not handed on (`_unacked`)
            except Exception as error:  # the thread then asks itself, as it would have
                logger.debug("admission of %s not asked early: %s", request.id, error)
        flush_held()  # the message's unacked entry is in Redis before it is handed on
        self._process_task(request)

    def apply_eta_task(self, request: Any) -> None:
        """Celery's `Consumer.apply_eta_task` for a task whose eta has come, handed to the threads:
        the consumer's own goes through the process pool's semaphore, which a thread-served task
        never releases, so two scheduled calls on a two-process worker stopped it taking any more."""
        task_reserved(request)
        self.on_task_request(request)
        self._consumer.qos.decrement_eventually()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def _chained(on_ack: Any) -> bool:
    """Whether Celery chained callbacks to this ack promise (vine's public `listeners`): after a
    reconnect, the restoration of the consumer's prefetch count. They run only when the promise is
    called, so such an ack goes Celery's way (deferred to the loop's next turn, as before)."""
    listeners = getattr(on_ack, "listeners", None)
    return listeners is not None and any(listener is not None for listener in listeners)
