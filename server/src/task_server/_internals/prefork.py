"""Celery's prefork pool, stopped without two sleeps that serve no purpose.

- Celery 5.7 keeps firing the event loop's timers (heartbeats, late acks) from a thread while a
  stopping pool drains, and that thread sleeps 0.5 s between passes with `time.sleep`: the stop
  then waited for the sleep to end after the pool had joined, 0.5 s on every warm shutdown.
  `PreforkPool.on_stop` is Celery 5.7's, with an event the join sets in place of the sleep.
  Celery 5.6 has no such thread (nor `_run_ready_callbacks`): there Celery's own `on_stop` runs.
- A pool process leaving its loop (a warm shutdown, a recycle) tells the main process so
  (billiard's DEATH message), then sleeps 1 s until the main process kills it on reading that
  message. A main process joining its pool at shutdown reads no more messages, so each pool
  process took the whole second to exit. Here it exits at once, with the exit code billiard
  gives it after the sleep, once the shutdown receivers connected before it started have run
  (Celery's `worker_process_shutdown`, where tracing flushes its spans): the main process learns
  of the exit as it learns of a kill, which is all the message would have brought about. Not
  after a terminate signal of its own, though: the main process most likely got it too (a
  process group signalled, systemd's default) and may not have closed its pool yet, and would
  start a new process in place of one that left at once; such a process still waits to be killed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from os import _exit as exit_process  # documented and public, underscore notwithstanding
from typing import Any

from billiard import common as billiard_common
from billiard.pool import CLOSE, RUN
from billiard.pool import Pool as BilliardPool
from celery import signals
from celery.concurrency import prefork
from kombu.asynchronous import get_event_loop

#: The dotted path Celery's `worker_pool` setting takes.
PREFORK_POOL = f"{__name__}:PreforkPool"

RELIED_ON: tuple[tuple[type, str], ...] = (
    (prefork.TaskPool, "_pool"),
    (BilliardPool, "_state"),
)

#: Runs the late acks queued on the event loop while the pool joins (Celery 5.7; absent from 5.6).
_run_ready_callbacks: Callable[[Any], None] | None = getattr(prefork, "_run_ready_callbacks", None)

#: Whether this process's own terminate-signal handler has run (billiard 4.3; without it, billiard's exit).
_terminate_handler_fired: Callable[[], bool] | None = getattr(billiard_common, "terminate_handler_fired", None)

#: Seconds between two passes of the timer thread (Celery's figure).
TIMER_INTERVAL = 0.5

logger = logging.getLogger(__name__)


class PreforkPool(prefork.TaskPool):  # type: ignore[misc]
    """Celery's prefork pool; its graceful stop returns as soon as the pool has joined."""

    def on_start(self) -> None:
        # Connected here, in the main process before it forks: each pool process then connects
        # its exit after every shutdown receiver its start-up connected (see the module doc).
        signals.worker_process_init.connect(exit_once_shut_down, weak=False)
        super().on_start()

    def on_stop(self) -> None:
        pool: Any = self._pool  # type: ignore[has-type]
        hub: Any = get_event_loop()
        run_ready = _run_ready_callbacks
        if pool is None or pool._state not in (RUN, CLOSE) or hub is None or run_ready is None:
            super().on_stop()
            return
        pool.close()
        joined = threading.Event()

        def fire_timers() -> None:
            while not joined.is_set():
                try:
                    hub.fire_timers()
                    run_ready(hub)
                except Exception:
                    logger.warning("Exception in timer thread during prefork on_stop()", exc_info=True)
                joined.wait(TIMER_INTERVAL)

        thread = threading.Thread(target=fire_timers, daemon=True, name="prefork-timer-shutdown")
        thread.start()
        try:
            pool.join()
        finally:
            joined.set()
            thread.join(timeout=1.0)
            if thread.is_alive():
                logger.warning("Timer thread in prefork on_stop() did not terminate cleanly")
            else:
                # The results the join waited for queued their acks after the thread's last pass.
                try:
                    run_ready(hub)
                except Exception:
                    logger.warning("Exception running ready callbacks after prefork pool join", exc_info=True)
        self._pool = None


def exit_once_shut_down(**_: Any) -> None:
    """In a starting pool process: its shutdown ends in an exit, after the receivers connected so far."""
    signals.worker_process_shutdown.connect(exit_without_death_message, weak=False)


def exit_without_death_message(pid: int, exitcode: int, **_: Any) -> None:
    """billiard's own end of a pool process (`os._exit`), less the DEATH message and the sleep after it."""
    if _terminate_handler_fired is not None and not _terminate_handler_fired():
        exit_process(exitcode)
