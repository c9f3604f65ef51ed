"""Contract tasks keep their requests in a `RequestStack`: Celery's stack, per thread, without its
failed attribute look-ups (no Redis: the tracer stores into an in-memory backend)."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery, Task, current_task
from celery._state import _task_stack
from celery.app.trace import build_tracer
from celery.utils.threads import LocalStack

from task_contracts import resolve_urls
from task_server._app import create_app
from task_server._internals.worker import (
    RequestStack,
    _ThreadLocal,
    keep_current_tasks_per_thread,
    keep_requests_per_thread,
)
from task_server._settings import WorkerSettings


def test_every_contract_task_of_a_worker_keeps_its_requests_per_thread() -> None:
    app = create_app(WorkerSettings(urls=resolve_urls("redis://127.0.0.1:1/0")))
    contract_tasks = [task for name, task in app.tasks.items() if not name.startswith("celery.")]
    assert contract_tasks
    assert all(isinstance(task.request_stack, RequestStack) for task in contract_tasks)


def test_it_behaves_as_celerys_stack() -> None:
    def steps(stack: Any) -> list[Any]:
        seen = [stack.top, len(stack), stack.pop()]
        stack.push("a")
        stack.push("b")
        seen += [stack.top, len(stack), stack.pop(), stack.top, stack.pop(), stack.top, len(stack), stack.pop()]
        return seen

    assert steps(RequestStack()) == steps(LocalStack()) == [None, 0, None, "b", 2, "b", "a", "a", None, 0, None]


def test_its_proxy_resolves_to_the_top_request() -> None:
    stack = RequestStack()
    proxy = stack()
    stack.push({"id": "r-1"})
    assert proxy["id"] == "r-1"


def test_methods_bound_in_one_thread_reach_the_calling_threads_stack() -> None:
    stack = RequestStack()
    push, pop = stack.push, stack.pop  # as Celery's tracer binds them, once, where it is built
    push("main")
    seen: list[Any] = []

    def other() -> None:
        seen.append(stack.top)
        push("other")
        seen.append(stack.top)
        seen.append(pop())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=10)
    assert seen == [None, "other", "other"]
    assert stack.top == "main" and len(stack) == 1


def test_concurrent_calls_through_celerys_tracer_each_see_their_own_request() -> None:
    app = Celery("request-stack-test", set_as_current=False, backend="cache+memory://")
    both_inside = threading.Barrier(2, timeout=10)

    @app.task(bind=True, shared=False)
    def whoami(task: Task, label: str) -> list[Any]:
        first = task.request.id
        both_inside.wait()  # the other thread's request is pushed meanwhile
        return [first, task.request.id, label, len(task.request_stack)]

    real = app.tasks[whoami.name]
    keep_requests_per_thread(real)
    trace = build_tracer(real.name, real, app=app)  # built here, run in two other threads
    results: dict[str, Any] = {}

    def call(label: str) -> None:
        outcome = trace(f"id-{label}", [label], {}, {"id": f"id-{label}", "delivery_info": {}})
        results[label] = outcome.retval

    threads = [threading.Thread(target=call, args=(label,)) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == {"a": ["id-a", "id-a", "a", 1], "b": ["id-b", "id-b", "b", 1]}
    assert real.request_stack.top is None  # nothing left behind in this thread either


def stack_steps(stack: Any) -> list[Any]:
    """What Celery's `LocalStack` answers through a short run of pushes and pops (its `stack` too)."""
    seen = [stack.top, len(stack), stack.pop(), list(stack.stack)]
    stack.push("a")
    stack.push("b")
    seen += [stack.top, len(stack), list(stack.stack), stack.pop(), stack.top, stack.pop(), stack.top]
    seen += [len(stack), stack.pop(), list(stack.stack)]
    return seen


def test_celerys_current_task_stack_kept_per_thread_behaves_as_its_own() -> None:
    ours = LocalStack()
    ours._local = _ThreadLocal()  # as keep_current_tasks_per_thread sets Celery's
    assert stack_steps(ours) == stack_steps(LocalStack())
    push, pop = ours.push, ours.pop  # bound once, as the tracer binds them
    push("main")
    seen: list[Any] = []

    def other() -> None:
        seen.extend([ours.top, len(ours)])
        push("other")
        seen.extend([ours.top, pop(), ours.top])

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=10)
    assert seen == [None, 0, "other", "other", None]
    assert ours.top == "main" and pop() == "main" and ours.top is None


def test_a_worker_keeps_celerys_current_task_stack_per_thread_and_current_task_reads_it() -> None:
    keep_current_tasks_per_thread()
    keep_current_tasks_per_thread()  # once is enough; again changes nothing
    assert isinstance(_task_stack._local, _ThreadLocal)
    app = Celery("test-current-task", set_as_current=False)

    def noop() -> None:
        return None

    task = app.task(noop, name="t", shared=False)  # shared: added to every app made later
    _task_stack.push(task)
    try:
        assert current_task._get_current_object() is task
    finally:
        _task_stack.pop()
    assert current_task._get_current_object() is None
