"""Celery's worker: the private hooks and attributes of its consumer, pools and current task."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import celery._state
import celery.app.trace
from celery import Task, current_task
from celery._state import _task_stack
from celery.app.task import Context
from celery.concurrency.base import BasePool
from celery.local import Proxy
from celery.utils.saferepr import saferepr
from celery.utils.threads import LocalStack
from celery.worker.worker import WorkController

RELIED_ON: tuple[tuple[type | ModuleType, str], ...] = (
    (celery._state, "_task_stack"),  # Celery's stack of current tasks (`keep_current_tasks_per_thread`)
    (celery.app.trace, "saferepr"),  # what its tracer writes a result's text with (`write_results_plainly`)
    (WorkController, "_process_task"),
    (BasePool, "_get_info"),
    (Proxy, "_get_current_object"),
    (Task, "request_stack"),
    (Context, "_get_custom_headers"),
    (LocalStack, "_local"),
)

#: The fields Celery's task context keeps as its own rather than as custom headers (as its
#: `Context._get_custom_headers` reckons them, 5.6 and 5.7).
_CONTEXT_FIELDS = frozenset({*Context.__dict__, "lang", "task", "argsrepr", "kwargsrepr", "compression"})


class PoolHooks:
    """Goes right before Celery's pool class: its private `_get_info` hook as `pool_info`, which a
    pool overrides and chains with `super()`, ending in Celery's own."""

    def _get_info(self) -> dict[str, Any]:
        return self.pool_info()

    def pool_info(self) -> dict[str, Any]:
        """The pool's part of `celery inspect stats` (Celery's `_get_info`)."""
        info: dict[str, Any] = super()._get_info()  # type: ignore[misc]
        return info


def task_processor(consumer: Any) -> Callable[[Any], None]:
    """What the worker's consumer calls to run a request in its pool (the controller's `_process_task`)."""
    process: Callable[[Any], None] = consumer.controller._process_task
    return process


def running_task() -> Any:
    """The Celery task running in this thread or process, or None."""
    return current_task._get_current_object()


class RequestStack(threading.local):
    """A task's stack of requests (Celery's `Task.request_stack`: `push`, `pop`, `top`, `len`), one per thread.

    Celery's own keeps each thread's stack in a `Local` whose every read first fails a normal
    attribute look-up and formats an `AttributeError` (its `__getattr__`); a call reads it about
    eight times (the tracer's push and pop, `task.request` in the body). `threading.local` gives
    each thread its own `stack` in C. The methods are the class's, so the tracer, which binds
    `push` and `pop` once in the thread that builds it, still reaches the calling thread's stack.
    """

    def __init__(self) -> None:  # run again in each thread, on its first use there
        self.stack: list[Any] = []

    def push(self, request: Any) -> None:
        self.stack.append(request)

    def pop(self) -> Any:
        """The top request, removed, or None when the stack is empty (as Celery's)."""
        stack = self.stack
        return stack.pop() if stack else None

    @property
    def top(self) -> Any:
        stack = self.stack
        return stack[-1] if stack else None

    def __len__(self) -> int:
        return len(self.stack)

    def __call__(self) -> Proxy:
        """A proxy of the top request (as Celery's stack gives)."""

        def top() -> Any:
            request = self.top
            if request is None:
                raise RuntimeError("object unbound")
            return request

        return Proxy(top)


def keep_requests_per_thread(task: Task) -> None:
    """Give `task` a `RequestStack`, before the worker builds its tracer (which binds the stack's methods)."""
    task.request_stack = RequestStack()


def custom_headers(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `headers` Celery's task context finds in a request's `fields` when it has none: every
    field that is not one of its own (as `Context._get_custom_headers`, which builds that set of
    about 50 names and pops each from a copy of the fields, on every run), or None."""
    headers = {name: value for name, value in fields.items() if name not in _CONTEXT_FIELDS}
    return headers or None


class _ThreadLocal(threading.local):
    """Celery's `Local` as its `LocalStack` uses it (an attribute per thread, `__release_local__`), in C."""

    def __release_local__(self) -> None:
        self.__dict__.clear()


def keep_current_tasks_per_thread() -> None:
    """Keep Celery's stack of current tasks (`celery._state._task_stack`, which its tracer pushes
    and pops around every call) in a `threading.local`, as `RequestStack` keeps a task's requests:
    its own `Local` fails an attribute look-up (a formatted `AttributeError`) on each push and
    pop. Same stack per thread, same methods. Done once, before any task is pushed."""
    if not isinstance(_task_stack._local, _ThreadLocal) and len(_task_stack) == 0:
        _task_stack._local = _ThreadLocal()


_PLAIN_NUMBERS = (int, float, bool, type(None))


def plain_saferepr(value: Any, maxlen: int | None = None, maxlevels: int = 3, seen: Any = None) -> str:
    """Celery's `saferepr`, the same text, made directly for a number, None or a short str: the
    tracer writes one of each result (for a log line and an event, even when neither is on), and
    Celery's streams every value through its general container walk (1.3 us for an int, 0.1 here)."""
    kind = type(value)
    if maxlen is None or maxlen > 0:
        if kind in _PLAIN_NUMBERS:
            text = str(value)  # as Celery writes a number (`str`) and None (`repr`, the same)
            if maxlen is None or len(text) < maxlen:
                return text
        elif kind is str and (maxlen is None or len(value) < maxlen):
            quoted: str = "'" + value.replace("'", "\\'") + "'"  # as Celery quotes text: only ' escaped
            return quoted
    written: str = saferepr(value, maxlen, maxlevels, seen)
    return written


def write_results_plainly() -> None:
    """Have Celery's tracer write each result's text with `plain_saferepr`."""
    if celery.app.trace.saferepr is saferepr:
        celery.app.trace.saferepr = plain_saferepr
