"""A message the worker will not run: a line in its log, a count in its metrics and, when the
message carries a readable task id, a stored `RefusedMessage` failure, so that its caller learns
why at once instead of waiting for its own timeout. Acknowledging it is the caller's part here."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from celery import Celery, states
from celery.utils.dispatch import Signal

from ._backend import STORE_ERRORS
from ._errors import RefusedMessage
from ._message_checks import is_text

logger = logging.getLogger(__name__)

#: Sent (sender: the task, or the task name when no task of this worker has it) for each refused
#: message; the worker's metrics count it.
message_refused = Signal(name="message_refused", providing_args={"reason"})


def refuse(app: Celery, sender: Any, name: Any, task_id: Any, problem: str, reply_to: Any = None) -> None:
    """Log, count and (for a string `task_id`) store the refusal of one message for task `name`."""
    shown = name if isinstance(name, str) else "a message naming no task" if name is None else repr(name)
    readable = task_id is None or is_text(task_id)
    logger.error("refused a message for %s (task id %s): %s", shown, task_id if readable else "unreadable", problem)
    message_refused.send(sender=sender, reason=problem)
    if not is_text(task_id) or not task_id:
        return
    # The task name gives the record its contract's lifetime; `reply_to` also publishes it on the
    # caller's reply channel, as a result would be (see `_backend`).
    request = SimpleNamespace(task=shown, reply_to=reply_to if is_text(reply_to) else None)
    try:
        app.backend.store_result(task_id, RefusedMessage(f"{shown}: {problem}"), states.FAILURE, request=request)
    except STORE_ERRORS as error:
        logger.error("the refusal of task %s could not be stored: %s", task_id, error)


def identity(headers: Any, properties: Any, payload: Any = None) -> tuple[Any, Any, Any]:
    """The task name, task id and reply channel a message names, each None where it names none:
    from its headers (protocol v2), else from its decoded body (protocol v1)."""
    fields = headers if isinstance(headers, dict) else {}
    if "id" not in fields and isinstance(payload, dict):
        fields = payload
    reply_to = properties.get("reply_to") if isinstance(properties, dict) else None
    return fields.get("task"), fields.get("id"), reply_to
