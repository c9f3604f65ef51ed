"""The first look at every message for a contract task, in the worker's main process, before
anything is decoded for it or handed to a pool process.

A message that is too large, not JSON, nested too deeply, whose body is not an `[args, kwargs,
embed]` triple, or whose headers, embed or properties Celery could not read (`_message_checks`),
is refused (`_refusals`): its task id gets a `RefusedMessage` failure, a line is logged, and the
message is acknowledged so it never comes back. Nothing in it is ever deserialised by anything but
`json`, so a pickle body is never unpickled. A protocol-v1 message (gocelery, Celery 3) reaches
here already decoded by Celery; it is checked after Celery's own conversion, then served as any
other call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.worker.strategy import default as default_strategy
from kombu.serialization import prepare_accept_content

from ._cancelled_ahead import drop_on_arrival
from ._deferral import deferrer_for
from ._inline import INLINE_SETTING, LoopPool
from ._internals.channel import json_decoded_by_kombu, preset_payload
from ._message_checks import (
    body_refusal,
    converted_refusal,
    may_hold_kombu_type,
    properties_refusal,
    received_size_refusal,
    size_refusal,
    v2_refusal,
)
from ._refusals import identity, refuse
from ._revoke_guard import pardon
from ._threads import ServedByThreads, served_by_threads, thread_pool

#: `app.conf` key holding the largest message a worker accepts, in bytes: its body, headers and
#: properties together (`_message_checks.received_size_refusal`); the body alone where the
#: transport did not measure the whole.
MAX_MESSAGE_BYTES_SETTING = "task_sdk_max_message_bytes"
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
#: Dotted path Celery instantiates for each contract task (`Task.Strategy`).
STRATEGY = f"{__name__}:guarded_strategy"

logger = logging.getLogger(__name__)


def guarded_strategy(task: Task, app: Celery, consumer: Any, **options: Any) -> Callable[..., Any]:
    """Celery's default strategy behind the checks above.

    A task of a contract declared `cpu_bound=False` runs on the main process's threads (`_threads`).
    """
    threads = None if getattr(task, "cpu_bound", True) else thread_pool(app)
    if threads is None:
        handle = default_strategy(task, app, consumer, **options)
    else:
        # On the event loop itself only when its author declared it (`_inline`), unless `--no-inline`.
        on_loop = getattr(task, "on_event_loop", False) and app.conf.get(INLINE_SETTING)
        pool = LoopPool(threads, task.name, app, consumer) if on_loop else threads
        handle = default_strategy(task, app, ServedByThreads(consumer, pool), **options)
        served_by_threads.add(task.name)
    limit = int(app.conf.get(MAX_MESSAGE_BYTES_SETTING) or DEFAULT_MAX_MESSAGE_BYTES)
    connection_errors = consumer.connection_errors
    accepted: set[str] = prepare_accept_content(app.conf.accept_content)  # type: ignore[no-untyped-call]
    deferrer = deferrer_for(app, consumer)

    def on_message(message: Any, body: Any, ack: Callable[..., Any], reject: Any, callbacks: Any, **kwargs: Any) -> Any:
        if drop_on_arrival(message.headers):  # its REVOKED record was stored by the cancel
            ack(logger, connection_errors)
            return None
        problem = message_refusal(message, body, limit, accepted)
        if problem is None and deferrer is not None and deferrer.maybe_defer(message, body):
            ack(logger, connection_errors)  # it waits in Redis now (`_deferral`)
            return None
        if problem is None:
            pardon(app, message.headers)  # a Celery revoke without the caller's cancel token
            return handle(message, body, ack, reject, callbacks, **kwargs)
        _, task_id, reply_to = identity(message.headers, message.properties, body)
        refuse(app, task, task.name, task_id, problem, reply_to)
        ack(logger, connection_errors)  # acknowledged: a refused message must never come back
        return None

    return on_message


def message_refusal(message: Any, payload: Any, limit: int, accepted: set[str]) -> str | None:
    """Why a message must not run, or None when it may. `payload` is the body Celery decoded
    (protocol v1, whose `task` is in the body), or None (protocol v2, still raw)."""
    problem = received_size_refusal(message, limit) or properties_refusal(message.properties)
    if problem:
        return problem
    if payload is not None:
        return size_refusal(message.body, limit) or converted_refusal(message, payload)
    problem, decoded = body_refusal(message.content_type, message.body, limit, accepted)
    if problem:
        return problem
    if isinstance(decoded, dict) and "args" in decoded:  # Celery's hybrid form: v2 headers, a v1 body
        return converted_refusal(message, decoded)
    problem = v2_refusal(decoded, message.headers)
    if problem is None and decodes_alike(message):
        preset_payload(message, decoded)  # Celery's strategy decodes it again otherwise (`message.payload`)
    return problem


def decodes_alike(message: Any) -> bool:
    """Whether kombu decodes `message`'s body to what `json.loads` gave: JSON in ASCII bytes that
    cannot hold one of kombu's typed values (`may_hold_kombu_type`); its content type one the
    message accepts, decoded by kombu's JSON."""
    body = message.body
    accept = message.accept
    return (
        isinstance(body, bytes)
        and message.content_type == "application/json"
        and (accept is None or "application/json" in accept)
        and body.isascii()
        and not may_hold_kombu_type(body)
        and json_decoded_by_kombu()
    )
