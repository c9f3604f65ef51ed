"""A prefork worker's warm shutdown: the timers keep firing while the pool joins, and the stop
returns once the pool has joined, not after the timer thread's last half-second sleep (Celery 5.7)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from billiard.pool import CLOSE, RUN
from celery import signals
from celery.concurrency import get_implementation
from kombu.asynchronous import Hub, get_event_loop, set_event_loop

from task_contracts import CATALOG, resolve_urls
from task_server import WorkerSettings
from task_server._app import celery_config
from task_server._internals import prefork
from task_server._internals.prefork import PreforkPool, exit_once_shut_down

TIMER_THREAD = "prefork-timer-shutdown"


class FiringHub(Hub):  # type: ignore[misc]
    """kombu's event loop, noting when its timers fire."""

    def __init__(self) -> None:
        super().__init__()
        self.fired = threading.Event()

    def fire_timers(self, *args: object, **kwargs: object) -> object:
        self.fired.set()
        return super().fire_timers(*args, **kwargs)


class JoinedOnceTimersFire:
    """Stands for billiard's pool: its join returns once the event loop's timers have fired."""

    def __init__(self, hub: FiringHub) -> None:
        self._state = RUN
        self.hub = hub
        self.joined = False

    def close(self) -> None:
        self._state = CLOSE

    def join(self) -> None:
        assert self._state == CLOSE
        assert self.hub.fired.wait(30), "no timer fired while the pool joined"
        self.joined = True


@pytest.fixture
def hub() -> Iterator[FiringHub]:
    previous, loop = get_event_loop(), FiringHub()
    set_event_loop(loop)
    try:
        yield loop
    finally:
        set_event_loop(previous)
        loop.close()


@pytest.mark.skipif(
    prefork._run_ready_callbacks is None,
    reason="Celery 5.6 (make test-lowest) fires no timers while its prefork pool joins: its own on_stop runs",
)
def test_the_stop_fires_timers_while_the_pool_joins_and_never_sleeps_after(
    hub: FiringHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    real_sleep = time.sleep

    def noted_sleep(seconds: float) -> None:
        if threading.current_thread().name == TIMER_THREAD:
            sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", noted_sleep)
    pool = PreforkPool(limit=1)
    billiard_pool = pool._pool = JoinedOnceTimersFire(hub)

    pool.on_stop()

    assert billiard_pool.joined and pool._pool is None
    assert sleeps == []  # Celery's own stop sleeps 0.5 s here, after the join has returned
    assert not [thread for thread in threading.enumerate() if thread.name == TIMER_THREAD]


def test_the_worker_setting_names_this_pool() -> None:
    urls = resolve_urls("redis://127.0.0.1:6379/0")
    config = celery_config(WorkerSettings(urls=urls), CATALOG)
    assert get_implementation(config["worker_pool"]) is PreforkPool


def test_a_pool_process_that_leaves_its_loop_exits_at_once_after_the_earlier_receivers() -> None:
    # Forked, as billiard forks pool processes: the child starts as one (`worker_process_init`), then
    # leaves as billiard's `_do_exit` does: the shutdown signal first, then the DEATH message and 1 s asleep.
    read_end, write_end = os.pipe()

    def flush_spans(**_: object) -> None:  # a receiver connected before the pool started (tracing's)
        os.write(write_end, b"flushed;")

    signals.worker_process_shutdown.connect(flush_spans, weak=False)
    signals.worker_process_init.connect(exit_once_shut_down, weak=False)  # as PreforkPool.on_start does
    try:
        pid = os.fork()
        if pid == 0:  # the pool process
            try:
                signals.worker_process_init.send(sender=None)
                signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=3)
                os.write(write_end, b"death message, asleep;")
                time.sleep(5)
            finally:
                os._exit(70)
    finally:
        signals.worker_process_shutdown.disconnect(flush_spans)
        signals.worker_process_init.disconnect(exit_once_shut_down)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as said:
        assert said.read() == b"flushed;"
    assert os.waitstatus_to_exitcode(status) == 3  # billiard's exit code, without its DEATH message and sleep
