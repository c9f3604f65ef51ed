"""The pool of threads serving `cpu_bound=False` contracts (`task_server._watched_threads`), on its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from task_server._watched_threads import WatchedThreads, call_overran
from task_server.testing import wait_until


class Calls:
    """Calls handed to the pool as Celery hands them: (task name, task id, ...) and a callback."""

    def __init__(self, pool: WatchedThreads) -> None:
        self.pool = pool
        self.release = threading.Event()
        self.done: list[str] = []

    def hang(self, task_id: str, bound: float) -> None:
        self.pool.apply_async(
            lambda *_: self.release.wait(30), ("ops.lookup", task_id), timeout=bound, callback=self._end(task_id)
        )

    def quick(self, task_id: str) -> None:
        self.pool.apply_async(lambda *_: None, ("ops.ping", task_id), timeout=5.0, callback=self._end(task_id))

    def _end(self, task_id: str) -> Any:
        return lambda _: self.done.append(task_id)


@pytest.fixture
def overruns() -> Iterator[list[str]]:
    seen: list[str] = []

    def note(sender: Any = None, task_id: str = "", **_: Any) -> None:
        seen.append(task_id)

    call_overran.connect(note, weak=False)
    try:
        yield seen
    finally:
        call_overran.disconnect(note)


def test_a_call_behind_hung_threads_gets_a_spare_thread() -> None:
    pool = WatchedThreads(1, grace=60)
    pool.start()
    calls = Calls(pool)
    try:
        calls.hang("h1", bound=60)
        calls.quick("q1")
        wait_until(lambda: calls.done == ["q1"], 5, "the quick call, on a spare thread")
    finally:
        calls.release.set()
        pool.stop()


def test_an_overrun_is_reported_once_its_thread_replaced_and_the_cap_called_once(overruns: list[str]) -> None:
    capped = threading.Event()
    pool = WatchedThreads(1, grace=0.1, max_leaked=1, on_too_many_leaked=capped.set)
    pool.start()
    calls = Calls(pool)
    try:
        calls.hang("h1", bound=0.1)
        wait_until(lambda: pool.leaked == 1, 5, "the first overrun")
        calls.quick("q1")
        wait_until(lambda: calls.done == ["q1"], 5, "a call on the thread that took the overrun's place")
        assert not capped.is_set()
        calls.hang("h2", bound=0.1)
        wait_until(lambda: pool.leaked == 2, 5, "the second overrun")
        wait_until(capped.is_set, 5, "the cap's callback")
        assert overruns == ["h1", "h2"]
        calls.release.set()
        wait_until(lambda: pool.leaked == 0, 5, "the overrun threads back")
        assert sorted(calls.done) == ["h1", "h2", "q1"]
    finally:
        calls.release.set()
        pool.stop()
