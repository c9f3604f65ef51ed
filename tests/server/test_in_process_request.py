"""Contracts served in the worker's main process hand their pool the body Celery already decoded
(no Redis: Celery's request class is made and handed to a pool that only records what it gets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery.app.task import Context
from celery.worker.request import create_request_cls
from celery.worker.strategy import proto1_to_proto2
from kombu.message import Message
from vine import promise

from task_contracts import resolve_urls
from task_server._app import create_app
from task_server._inline import _OnTheLoop, running_on_the_loop
from task_server._internals.worker import custom_headers
from task_server._settings import WorkerSettings
from task_server._threads import InProcessRequest

URL = "redis://127.0.0.1:1/0"


class RecordingPool:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def apply_async(self, target: Any, args: Any = None, **options: Any) -> None:
        self.calls.append({"target": target, "args": args})


def handed_over(request_class: Any, message: Message, **request_options: Any) -> tuple[Any, ...]:
    """The arguments Celery's request gives its pool for `message` (as the worker's strategy makes it)."""
    app = create_app(WorkerSettings(urls=resolve_urls(URL)))
    task = app.tasks["math.add"]
    pool = RecordingPool()
    request = create_request_cls(request_class, task, pool, "worker@test", None, app=app)(
        message, app=app, task=task, **request_options
    )
    request.execute_using_pool(pool)
    (call,) = pool.calls
    args: tuple[Any, ...] = call["args"]
    return args


def v2_message(body: Any, **extra_headers: Any) -> Message:
    headers = {"id": "t-1", "task": "math.add", "lang": "py", "retries": 0, "contract_shape": None, **extra_headers}
    message = Message(
        body=json.dumps(body).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        properties={"correlation_id": "t-1", "reply_to": None},
        delivery_info={"exchange": "", "routing_key": "math"},
        accept={"application/json"},
    )
    return message


def test_math_add_is_served_in_process_and_cpu_bound_contracts_keep_celerys_request() -> None:
    threads = create_app(WorkerSettings(urls=resolve_urls(URL)))
    assert threads.tasks["math.add"].Request.endswith(":InProcessRequest")
    assert threads.tasks["math.mul"].Request.endswith(":InProcessRequest")
    no_threads = create_app(WorkerSettings(urls=resolve_urls(URL), threads=0))
    assert no_threads.tasks["math.add"].Request == "celery.worker.request:Request"  # its pool may be a process
    assert threads.tasks["reports.count_to"].Request == "celery.worker.request:Request"  # cpu_bound: prefork
    assert threads.tasks["math.add:chunk"].Request == "celery.worker.request:Request"


def test_the_pool_gets_the_decoded_body_of_a_v2_message() -> None:
    body = [[4, 7], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    name, task_id, request_dict, handed_body, content_type, content_encoding = handed_over(
        InProcessRequest, v2_message(body)
    )
    assert (name, task_id, content_type, content_encoding) == ("math.add", "t-1", None, None)
    assert handed_body == body
    assert request_dict["args"] == [4, 7] and request_dict["kwargs"] == {}


def test_celerys_own_request_hands_the_raw_body() -> None:
    body = [[4, 7], {}, {}]
    message = v2_message(body)
    *_, handed_body, content_type, _ = handed_over(InProcessRequest.__mro__[1], message)
    assert (handed_body, content_type) == (message.body, "application/json")


def test_a_converted_protocol_v1_body_is_handed_as_celery_converted_it() -> None:
    v1 = {"id": "t-1", "task": "math.add", "args": [4, 7], "kwargs": {}}
    message = Message(
        body=json.dumps(v1).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        headers={},
        properties={"correlation_id": "t-1"},
        delivery_info={"exchange": "", "routing_key": "math"},
        accept={"application/json"},
    )
    converted, headers, decoded, utc = proto1_to_proto2(message, message.decode())
    *_, handed_body, content_type, _ = handed_over(
        InProcessRequest, message, body=converted, headers=headers, decoded=decoded, utc=utc
    )
    assert content_type is None
    assert handed_body is converted


def celerys_context(request_dict: dict[str, Any], body: Any) -> Context:
    """The task context Celery's tracer (`fast_trace_task`, `trace_task`) builds for a request."""
    args, kwargs, embed = body
    request = dict(request_dict)
    request.update({"args": args, "kwargs": kwargs, "hostname": "worker@test", "is_eager": False}, **embed or {})
    return Context(request, args=args, called_directly=False, kwargs=kwargs)


def test_the_context_gets_the_custom_headers_celery_would_find() -> None:
    body = [[4, 7], {}, {"callbacks": None, "chain": None, "embedded_extra": "e"}]
    message = v2_message(body, cancel_hash="c" * 64, foreign_header={"nested": [1]}, argsrepr="[4, 7]")
    _, _, request_dict, handed_body, _, _ = handed_over(InProcessRequest, message)
    raw = handed_over(InProcessRequest.__mro__[1], message)
    celerys = celerys_context(raw[2], body).headers
    assert celerys == {
        "contract_shape": None,
        "cancel_hash": "c" * 64,
        "foreign_header": {"nested": [1]},
        "embedded_extra": "e",
    }
    assert celerys_context(request_dict, handed_body).headers == celerys


def test_a_headers_field_of_the_message_is_kept_as_celery_keeps_it() -> None:
    body = [[4, 7], {}, {}]
    _, _, request_dict, handed_body, _, _ = handed_over(InProcessRequest, v2_message(body, headers={"h": 1}))
    assert celerys_context(request_dict, handed_body).headers == {"h": 1}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"id": "t", "task": "x", "lang": "py", "argsrepr": "", "kwargsrepr": "", "compression": None},
        {"id": "t", "retries": 0, "stamps": {}, "custom": 1, "another": None},
        {name: name for name in Context.__dict__ if not name.startswith("__")} | {"mine": [1]},
    ],
)
def test_custom_headers_are_celerys_rule(fields: dict[str, Any]) -> None:
    assert custom_headers(fields) == Context._get_custom_headers(Context(), fields)


class RecordingMessage(Message):  # type: ignore[misc]
    """A message whose ack is recorded rather than sent to a broker."""

    def __init__(self, acked: list[str]) -> None:
        super().__init__(body=b"[]", delivery_tag="tag-1", content_type="application/json")
        self._acked = acked

    def ack_log_error(self, logger: Any, errors: Any, multiple: bool = False) -> None:
        self._acked.append("now")


def request_to_acknowledge(deferred: list[str], acked: list[str], on_ack: Any = None) -> InProcessRequest:
    """A request whose `on_ack` defers, as the consumer's (`call_soon_ack`): appends to `deferred`."""
    message = RecordingMessage(acked)
    message.headers.update({"id": "t-1", "task": "math.add", "lang": "py"})
    app = create_app(WorkerSettings(urls=resolve_urls(URL)))
    request = InProcessRequest(
        message,
        app=app,
        task=app.tasks["math.add"],
        on_ack=on_ack or (lambda *args: deferred.append("next turn")),
        body=[[4, 7], {}, {}],
        decoded=True,
    )
    return request


def test_a_call_on_the_event_loop_is_acknowledged_at_once_any_other_on_the_loops_next_turn() -> None:
    deferred: list[str] = []
    acked: list[str] = []
    on_threads = request_to_acknowledge(deferred, acked)
    on_threads.acknowledge()
    assert (deferred, acked, on_threads.acknowledged) == (["next turn"], [], True)

    deferred.clear()
    on_loop = request_to_acknowledge(deferred, acked)
    _OnTheLoop(on_loop.app).apply_async(lambda: on_loop.acknowledge() or on_loop.acknowledge())
    assert (deferred, acked, on_loop.acknowledged) == ([], ["now"], True)  # once, not deferred
    assert not running_on_the_loop()  # only while a call runs there


def test_an_ack_with_callbacks_chained_by_celery_is_acknowledged_as_celery_does() -> None:
    """After a reconnect Celery chains the restoration of its prefetch count to each message's ack
    promise (`Consumer._restore_prefetch_count_after_connection_restart`): an ack at once on the loop
    skipped the promise, so that count stayed reduced. Such an ack goes Celery's way; others at once."""
    deferred: list[str] = []
    acked: list[str] = []
    restored: list[str] = []
    chained = promise(lambda *args: deferred.append("next turn"))
    chained.then(lambda *args: restored.append("prefetch count"))
    on_loop = request_to_acknowledge(deferred, acked, chained)
    _OnTheLoop(on_loop.app).apply_async(on_loop.acknowledge)
    assert (deferred, acked, restored, on_loop.acknowledged) == (["next turn"], [], ["prefetch count"], True)

    deferred.clear()
    plain = request_to_acknowledge(deferred, acked, promise(lambda *args: deferred.append("next turn")))
    _OnTheLoop(plain.app).apply_async(plain.acknowledge)
    assert (deferred, acked, plain.acknowledged) == ([], ["now"], True)
