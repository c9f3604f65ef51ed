"""Calls cancelled while still queued, dropped as their messages arrive, before any admission.

A stream that is abandoned (`imap` closed, its task cancelled) cancels every call still queued:
each gets a durable revoke mark and a REVOKED record. Their messages stay on the queue, and each
used to cost the worker that later took it a full admission (a round trip, and for a prefork
contract a trip to a pool process) before it was dropped: a fresh call waited behind thousands.

So the client also broadcasts the cancelled ids with their cancel tokens (`CONTROL_CANCELLED`),
and a worker keeps them here, bounded. A message whose id is kept, and whose `cancel_hash` is the
hash of the kept token, is acknowledged on arrival: one dictionary lookup and one hash. Anyone may
broadcast, but without the token a message is never dropped (it goes through admission as before).
"""

from __future__ import annotations

import collections
import hmac
import logging
import threading
from typing import Any

from celery.worker.control import control_command

from task_contracts.wire import CANCEL_HASH_HEADER, CONTROL_CANCELLED, cancel_hash

logger = logging.getLogger(__name__)

#: Cancelled ids kept at most (oldest forgotten first): about 150 bytes each.
MAX_KEPT = 50_000

_kept: collections.OrderedDict[str, str] = collections.OrderedDict()
_lock = threading.Lock()


@control_command(name=CONTROL_CANCELLED)  # type: ignore[untyped-decorator]
def cancelled(state: Any, calls: Any = None, **kwargs: Any) -> None:
    """Keep the cancelled calls `{task id: cancel token}` a client announces."""
    if not isinstance(calls, dict):
        return
    with _lock:
        for task_id, token in calls.items():
            if isinstance(task_id, str) and isinstance(token, str):
                _kept[task_id] = token
        while len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)


def drop_on_arrival(headers: Any) -> bool:
    """Whether this message is a call cancelled while queued, with the caller's token (see above)."""
    if not _kept or not isinstance(headers, dict):
        return False
    task_id = headers.get("id")
    expected = headers.get(CANCEL_HASH_HEADER)
    if not isinstance(task_id, str) or not isinstance(expected, str) or not expected:
        return False
    with _lock:
        token = _kept.pop(task_id, None)
    if token is None:
        return False
    if not hmac.compare_digest(cancel_hash(token), expected):
        logger.warning("%s: ignored a cancel broadcast without the caller's cancel token", task_id)
        return False
    logger.info("%s[%s]: cancelled while queued; dropped on arrival", headers.get("task"), task_id)
    return True
