"""Celery's own revoke obeys the cancel tokens too.

Any Redis user who may publish on the remote-control channel can broadcast Celery's `revoke` (or
`terminate`): each worker puts the id in its in-memory revoked set, dropping the call when its
message arrives, and with `terminate=True` stops it while it runs. For a call that names a
`cancel_hash` (see `task_contracts.wire`), this module lets that happen only if the durable revoke
mark carries the call's token, as `_admission` requires; `task-client` writes the mark before it
asks workers to stop a running call. Calls without the header keep Celery's rule.

Three places: the `revoke` and `terminate` remote-control commands (calls this worker runs, has
prefetched or holds until their eta), and each message as it arrives (`pardon`), for an id revoked
before its message came. A worker stores no REVOKED record for a call it does not hold (`_backend`).

Two more commands revoke too. `hello` (Celery's mingle: one worker telling another what it has
revoked) adds any ids it is sent to the revoked set, so it goes through the same check.
`revoke_by_stamped_headers` revokes every call whose stamps match, naming no id to check a token
against; the SDK stamps no call, so it is refused.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery.utils.functional import maybe_list
from celery.worker import control
from celery.worker import state as worker_state
from celery.worker.request import Request

from task_contracts.wire import CANCEL_HASH_HEADER, REVOKED_KEY_PREFIX

from ._admission import mark_is_genuine
from ._backend import STORE_ERRORS

logger = logging.getLogger(__name__)

_celery_revoke = control.revoke
_celery_hello = control.hello


def genuine_ids(backend: Any, task_ids: list[str], held: dict[str, Any]) -> list[str]:
    """The ids a revoke may act on: `held` maps the ids of calls this worker holds to their cancel hash."""
    allowed = []
    for task_id in task_ids:
        expected = held.get(task_id)
        if isinstance(expected, str) and expected and not _marked(backend, task_id, expected):
            logger.warning("%s: ignored a Celery revoke without the caller's cancel token", task_id)
            continue
        allowed.append(task_id)
    return allowed


def _marked(backend: Any, task_id: str, expected: str) -> bool:
    try:
        mark = backend.client.get(REVOKED_KEY_PREFIX + task_id)
    except STORE_ERRORS:
        return False  # unverifiable: the call goes on, as it would without the revoke
    return mark is not None and mark_is_genuine(mark.decode() if isinstance(mark, bytes) else str(mark), expected)


def _held_hashes(state: Any, task_ids: list[str]) -> dict[str, Any]:
    wanted = set(task_ids)
    held = (*worker_state.active_requests, *worker_state.reserved_requests, *_scheduled_requests(state))
    return {request.id: request.request_dict.get(CANCEL_HASH_HEADER) for request in held if request.id in wanted}


def _scheduled_requests(state: Any) -> list[Request]:
    """Requests the worker holds until their eta, read as Celery's `inspect scheduled` reads them."""
    timer = getattr(state.consumer, "timer", None)
    if timer is None:
        return []
    found = []
    for waiting in timer.schedule.queue:
        arguments = getattr(waiting.entry, "args", None) or ()
        if arguments and isinstance(arguments[0], Request):
            found.append(arguments[0])
    return found


@control.control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]", name="revoke")  # type: ignore[untyped-decorator]
def revoke(state: Any, task_id: Any, terminate: bool = False, signal: str | None = None, **kwargs: Any) -> Any:
    """Celery's `revoke`, for the ids whose revoke is genuine (see the module docstring)."""
    task_ids = [str(item) for item in maybe_list(task_id) or []]
    allowed = genuine_ids(state.consumer.app.backend, task_ids, _held_hashes(state, task_ids))
    return _celery_revoke(state, allowed, terminate=terminate, signal=signal, **kwargs)


@control.control_command(  # type: ignore[untyped-decorator]
    variadic="task_id", args=[("signal", str)], signature="<signal> [id1 [id2 [... [idN]]]]", name="terminate"
)
def terminate(state: Any, signal: str, task_id: Any, **kwargs: Any) -> Any:
    """Celery's `terminate` (a revoke that stops running calls), through the check above."""
    return revoke(state, task_id, terminate=True, signal=signal)


def pardon(app: Any, headers: Any) -> None:
    """A message arriving with a `cancel_hash` whose id a revoke put in the revoked set without its
    token is taken out of the set again, so that Celery does not drop it."""
    expected = headers.get(CANCEL_HASH_HEADER) if isinstance(headers, dict) else None
    task_id = headers.get("id") if isinstance(expected, str) and expected else None
    if not isinstance(task_id, str) or task_id not in worker_state.revoked:
        return
    if not genuine_ids(app.backend, [task_id], {task_id: expected}):
        with contextlib.suppress(KeyError):
            worker_state.revoked.discard(task_id)


@control.inspect_command(visible=False, name="hello")  # type: ignore[untyped-decorator]
def hello(state: Any, from_node: Any, revoked: Any = None, **kwargs: Any) -> Any:
    """Celery's mingle `hello`, merging only the revoked ids whose revoke is genuine."""
    if revoked and from_node != state.hostname:
        task_ids = [str(item) for item in (revoked if isinstance(revoked, list | tuple | dict) else [revoked])]
        allowed = genuine_ids(state.consumer.app.backend, task_ids, _held_hashes(state, task_ids))
        if len(allowed) < len(task_ids):
            logger.warning("ignored %d revoked ids sent by %r in a hello", len(task_ids) - len(allowed), from_node)
        revoked = allowed
    return _celery_hello(state, from_node, revoked=revoked, **kwargs)


@control.control_command(  # type: ignore[untyped-decorator]
    variadic="headers", signature="[key1=value1 [key2=value2 [... [keyN=valueN]]]]", name="revoke_by_stamped_headers"
)
def revoke_by_stamped_headers(state: Any, headers: Any, **kwargs: Any) -> Any:
    """Refused: a revoke by stamps names no call whose cancel token could be checked."""
    logger.warning("refused a remote revoke_by_stamped_headers (%.80r): cancel calls by id", headers)
    return control.nok("revoke_by_stamped_headers is disabled on task-server workers; cancel calls by id")
