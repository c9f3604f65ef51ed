"""Light contracts run on the worker's event loop itself, once they have shown that they are quick.

A contract declared `cpu_bound=False` is served from threads (`_threads`). Handing each call to a
thread and back costs a wake-up of each side and the GIL passing between them, a large part of a
small call's round trip; measured on `client.add(4, 7)` (p50 of blocks of 1,000 sequential calls):
0.63-0.88 ms on a thread, changing with where the scheduler puts the threads, against a steady
0.55 ms on the loop. So once a contract's implementation has returned within `QUICK` seconds
`QUALIFYING` times in a row on the threads, the worker runs its calls on the loop, as Celery's solo
pool runs every call. The first of those runs that takes longer than `SLOW` sends the contract back
to the threads for the rest of the worker's life, with a warning: one run is the most that can hold
up the loop (consuming, acknowledging, remote control). `--no-inline` keeps every call on threads.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.concurrency.base import BasePool, apply_target

#: `app.conf` key: whether quick light contracts may run on the event loop (`--inline/--no-inline`).
INLINE_SETTING = "task_sdk_inline"
QUICK = 0.001
SLOW = 0.010
QUALIFYING = 20

logger = logging.getLogger(__name__)


class LoopServing:
    """Which light contracts this worker process runs on its event loop; fed with every run's duration."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._streaks: dict[str, int] = {}
        self._on_loop: set[str] = set()
        self._kept_off: set[str] = set()

    def on_loop(self, name: str) -> bool:
        return name in self._on_loop

    def record(self, name: str, seconds: float, *, on_loop: bool) -> None:
        if name in self._kept_off:
            return
        with self._lock:
            if on_loop:
                if seconds > SLOW:
                    self._on_loop.discard(name)
                    self._kept_off.add(name)
                    logger.warning(
                        "%s took %.0f ms on the worker's event loop; its calls run on threads from now on",
                        name,
                        seconds * 1000,
                    )
                return
            streak = self._streaks[name] = self._streaks.get(name, 0) + 1 if seconds <= QUICK else 0
            if streak >= QUALIFYING and name not in self._on_loop:
                self._on_loop.add(name)
                logger.info(
                    "%s returned within %g ms %d times in a row; its calls run on the event loop from now on",
                    name,
                    QUICK * 1000,
                    QUALIFYING,
                )


_serving: LoopServing | None = None


def loop_serving() -> LoopServing:
    """This worker process's choices (made once, in the main process, when light contracts are served)."""
    global _serving
    if _serving is None or _serving.pid != os.getpid():
        _serving = LoopServing()
    return _serving


def note_run(name: str, seconds: float) -> None:
    """Record how long an implementation of a light contract took (a no-op in pool processes)."""
    serving = _serving
    if serving is not None and serving.pid == os.getpid():
        serving.record(name, seconds, on_loop=threading.current_thread() is threading.main_thread())


class _OnTheLoop(BasePool):  # type: ignore[misc]
    """Runs each call at once in the calling thread (the event loop's), as Celery's solo pool."""

    def __init__(self, app: Any) -> None:
        super().__init__(limit=1, app=app)
        self.on_apply = apply_target


class LightPool:
    """The pool one light contract's requests are given: each call goes to the loop or the threads."""

    def __init__(self, threads: BasePool, name: str, app: Any) -> None:
        self._threads = threads
        self._loop = _OnTheLoop(app)
        self._name = name
        self._serving = loop_serving()
        self.limit = threads.limit

    def apply_async(self, target: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        pool = self._loop if self._serving.on_loop(self._name) else self._threads
        return pool.apply_async(target, args, kwargs, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._threads, name)
