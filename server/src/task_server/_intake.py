"""The first look at every message for a contract task, in the worker's main process, before
anything is decoded or handed to a pool process.

A message that is too large, not JSON, or whose body is not an `[args, kwargs, embed]` triple
is refused: its task id gets a `RefusedMessage` failure (so a waiting caller learns why at once),
a line is logged, and the message is acknowledged so it never comes back. Nothing in it is ever
deserialised by anything but `json`, so a pickle body is never unpickled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task, states
from celery.utils.dispatch import Signal
from celery.worker.strategy import default as default_strategy
from kombu.serialization import prepare_accept_content

from ._backend import STORE_ERRORS
from ._errors import RefusedMessage
from ._inline import INLINE_SETTING, LoopPool
from ._threads import ServedByThreads, thread_pool

#: `app.conf` key holding the largest message body a worker accepts, in bytes.
MAX_MESSAGE_BYTES_SETTING = "task_sdk_max_message_bytes"
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
#: Dotted path Celery instantiates for each contract task (`Task.Strategy`).
STRATEGY = f"{__name__}:guarded_strategy"

logger = logging.getLogger(__name__)

#: Sent (sender: the task) for each message refused here; the worker's metrics count it.
message_refused = Signal(name="message_refused", providing_args={"reason"})


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
        pool = LoopPool(threads, task.name, app) if on_loop else threads
        handle = default_strategy(task, app, ServedByThreads(consumer, pool), **options)
    limit = int(app.conf.get(MAX_MESSAGE_BYTES_SETTING) or DEFAULT_MAX_MESSAGE_BYTES)
    connection_errors = consumer.connection_errors
    accepted: set[str] = prepare_accept_content(app.conf.accept_content)  # type: ignore[no-untyped-call]

    def on_message(message: Any, body: Any, ack: Callable[..., Any], reject: Any, callbacks: Any, **kwargs: Any) -> Any:
        problem = refusal(message.content_type, message.body, limit, accepted)
        if problem is None:
            return handle(message, body, ack, reject, callbacks, **kwargs)
        _refuse(task, message.headers or {}, problem)
        ack(logger, connection_errors)  # acknowledged: a refused message must never come back
        return None

    return on_message


def refusal(content_type: str | None, body: bytes | str, limit: int, accepted: set[str]) -> str | None:
    """Why a message must not run, or None when it may."""
    size = len(body)
    if size > limit:
        return f"message body is {size} bytes, more than this worker accepts ({limit} bytes, --max-message-bytes)"
    if content_type not in accepted:
        return f"content type {content_type!r} is not accepted (accepted: {', '.join(sorted(accepted))}); not decoded"
    try:
        decoded = json.loads(body)
    except ValueError as error:
        return f"message body is not valid JSON: {error}"
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and isinstance(decoded[0], list)
        and isinstance(decoded[1], dict)
        and isinstance(decoded[2], dict | None)
    ):
        return "message body is not a protocol-v2 [args, kwargs, embed] triple"
    return None


def _refuse(task: Task, headers: dict[str, Any], problem: str) -> None:
    task_id = headers.get("id")
    logger.error("refused a message for %s (task id %s): %s", task.name, task_id, problem)
    message_refused.send(sender=task, reason=problem)
    if not isinstance(task_id, str):
        return
    try:
        task.backend.store_result(task_id, RefusedMessage(f"{task.name}: {problem}"), states.FAILURE)
    except STORE_ERRORS as error:
        logger.error("the refusal of task %s could not be stored: %s", task_id, error)
