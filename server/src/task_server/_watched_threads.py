"""The threads that serve `cpu_bound=False` contracts, watched so that a hung call costs one thread only.

A thread cannot be killed, so a call that hangs (a network read without a timeout, a lock) keeps its
thread for as long as it hangs. Celery's thread pool (a `ThreadPoolExecutor` of fixed size) then
serves the other calls with one thread fewer, and with none once every thread hangs. Here:

- a call that has waited `STALL` seconds for a thread while every thread is busy gets a thread
  of its own (a spare, up to `limit` of them), so a hang delays the calls behind it by about
  `STALL`, not until it ends;
- a call still running `grace` seconds past its bound (Celery's hard time limit, the contract's
  timeout) is an overrun: logged once, counted (`call_overran`, the worker's metrics), and its
  thread no longer counts as one of the `limit`, so a new one takes its place;
- once more than `max_leaked` threads are held by overruns, the pool starts no more calls and
  calls `on_too_many_leaked` once (the worker then restarts itself: `_restart`).

Threads are daemons, and stopping the pool waits only for calls that have not overrun.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery.concurrency.base import BasePool, apply_target
from celery.utils.dispatch import Signal

from ._internals.worker import PoolHooks

#: Seconds a call may wait for a thread while all are busy before a spare thread starts for it.
STALL = 0.25
#: Seconds a thread beyond `limit` (a spare) waits for another call before it ends.
SPARE_IDLE = 2.0
#: How often the watch looks at running and waiting calls.
TICK = 0.05
DEFAULT_OVERRUN_GRACE = 5.0
DEFAULT_MAX_LEAKED_THREADS = 16

logger = logging.getLogger(__name__)

#: Sent (sender: the task name) once per call still running past its bound plus the grace.
call_overran = Signal(name="call_overran", providing_args={"task_id", "seconds"})


@dataclass
class _Call:
    target: Any
    args: Any
    kwargs: Any
    options: dict[str, Any]
    bound: float | None
    queued: float = field(default_factory=time.monotonic)
    started: float = 0.0

    def describe(self) -> tuple[str, str]:
        # Celery hands a request over as (task name, task id, request, body, ...).
        args = self.args or ("?", "?")
        return str(args[0]), str(args[1] if len(args) > 1 else "?")


class _Runner:
    def __init__(self) -> None:
        self.call: _Call | None = None
        self.leaked = False
        self.thread: threading.Thread | None = None


class WatchedThreads(PoolHooks, BasePool):  # type: ignore[misc]
    """A Celery pool of `limit` threads (more while calls hang) that notices and outlives hung calls."""

    body_can_be_buffer = True
    signal_safe = False

    def __init__(
        self,
        limit: int,
        app: Any = None,
        *,
        grace: float = DEFAULT_OVERRUN_GRACE,
        max_leaked: int = DEFAULT_MAX_LEAKED_THREADS,
        on_too_many_leaked: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(limit=limit, app=app)
        self.grace = grace
        self.max_leaked = max_leaked
        self._on_too_many_leaked = on_too_many_leaked
        self._changed = threading.Condition()
        self._waiting: deque[_Call] = deque()
        self._runners: set[_Runner] = set()
        self._idle = 0
        self._stopping = False
        self._gave_up = False
        self._watch: threading.Thread | None = None

    # -- counts, under self._changed ------------------------------------------------------------
    def _serving(self) -> int:
        return sum(1 for runner in self._runners if not runner.leaked)

    @property
    def leaked(self) -> int:
        """Threads held by calls that overran and have not returned yet."""
        with self._changed:
            return sum(1 for runner in self._runners if runner.leaked)

    def on_start(self) -> None:
        self._watch = threading.Thread(target=self._watch_calls, name="task-sdk-thread-watch", daemon=True)
        self._watch.start()

    def on_apply(self, target: Any, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        call = _Call(target, args, kwargs, options, options.get("timeout"))
        with self._changed:
            self._waiting.append(call)
            if self._idle:
                self._changed.notify()
            if len(self._waiting) > self._idle and self._serving() < self.limit:
                self._start_runner()

    def _start_runner(self) -> None:
        self._idle += 1  # counted as idle from now: it takes a waiting call as soon as it runs
        runner = _Runner()
        runner.thread = threading.Thread(target=self._run, args=(runner,), name="task-sdk-thread", daemon=True)
        self._runners.add(runner)
        runner.thread.start()

    def _run(self, runner: _Runner) -> None:
        while True:
            with self._changed:
                idle_since = time.monotonic()
                while not self._waiting and not self._stopping:
                    if self._serving() <= self.limit:
                        self._changed.wait()
                        continue
                    # A spare, or a thread back from an overrun: kept a while for the next call.
                    left = idle_since + SPARE_IDLE - time.monotonic()
                    if left <= 0:
                        self._idle -= 1
                        self._runners.discard(runner)
                        return
                    self._changed.wait(left)
                self._idle -= 1
                if self._stopping:
                    self._runners.discard(runner)
                    return
                call = runner.call = self._waiting.popleft()
                call.started = time.monotonic()
            try:
                apply_target(call.target, call.args, call.kwargs, **call.options)
            except BaseException:  # Celery's tracer handles the task's own errors; this is ours
                logger.exception("a thread-served call failed outside its task")
            with self._changed:
                runner.call = None
                runner.leaked = False
                self._idle += 1

    def _watch_calls(self) -> None:
        while True:
            with self._changed:
                if self._stopping:
                    return
                now = time.monotonic()
                overran = [runner for runner in self._runners if self._overran(runner, now)]
                for runner in overran:
                    runner.leaked = True
                # The places of overruns, refilled; then a spare for each call stalled behind busy threads.
                while len(self._waiting) > self._idle and self._serving() < self.limit:
                    self._start_runner()
                stalled = sum(1 for call in self._waiting if now - call.queued >= STALL) - self._idle
                for _ in range(min(stalled, self.limit * 2 - self._serving())):
                    self._start_runner()
                leaked = sum(1 for runner in self._runners if runner.leaked)
                give_up = leaked > self.max_leaked and not self._gave_up
                self._gave_up = self._gave_up or give_up
            for runner in overran:
                self._report_overrun(runner, now)
            if give_up and self._on_too_many_leaked is not None:
                self.drain()  # calls not started stay unacknowledged: the restart puts them back
                logger.error(
                    "%d threads are held by calls that overran (more than --max-leaked-threads %d)",
                    leaked,
                    self.max_leaked,
                )
                self._on_too_many_leaked()
            time.sleep(TICK)

    def _overran(self, runner: _Runner, now: float) -> bool:
        call = runner.call
        return (
            call is not None
            and not runner.leaked
            and call.bound is not None
            and now - call.started > call.bound + self.grace
        )

    def _report_overrun(self, runner: _Runner, now: float) -> None:
        call = runner.call
        if call is None:  # it returned meanwhile
            return
        name, task_id = call.describe()
        seconds = now - call.started
        logger.warning(
            "%s[%s] has run %.1f s, past its bound of %g s and the %g s grace: its thread is left to it "
            "and another takes its place",
            name,
            task_id,
            seconds,
            call.bound,
            self.grace,
        )
        call_overran.send(sender=name, task_id=task_id, seconds=seconds)

    def drain(self) -> None:
        """Start no more calls (a warm shutdown has begun); those running go on."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()

    def on_stop(self) -> None:
        """Start no more calls; let those that have not overrun finish (each within its bound and the grace)."""
        self.drain()
        with self._changed:
            busy = [(runner.thread, runner.call) for runner in self._runners if runner.call and not runner.leaked]
        now = time.monotonic()
        for thread, call in busy:
            if thread is not None and call is not None:
                left = (call.bound or 0.0) + self.grace - (now - call.started)
                thread.join(max(left, 0.0))

    def on_terminate(self) -> None:
        self.on_stop()

    def pool_info(self) -> dict[str, Any]:
        info = super().pool_info()
        with self._changed:
            info.update({"max-concurrency": self.limit, "threads": len(self._runners)})
        return info
