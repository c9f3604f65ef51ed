"""Cancelling a call: one atomic script in the result backend decides what a cancel can still do.

The protocol (keys and `CANCEL_SCRIPT` in `task_contracts.wire`): a worker that starts a call sets
its running key in the same atomic step in which it checks the call's revoke key. So the script
either comes before the start (it sets the revoke key, which every worker checks, and stores a REVOKED record
that wakes every waiter at once) or after it (it reports the call as running, with whether its
contract is interruptible). A call already finished is left alone. Expiry uses the same script with
the reason "expired": a call not started when it expires never runs.

A cancel by id first looks for a message with that id (`Runtime.is_known`), except for a call this
client published: a worker's BRPOP takes a message off its queue before the worker writes its
unacked entry, and a search in between found it nowhere and answered UNKNOWN for a call that was
queued (its mark still stopped it, but no record woke its waiters until it was due). Another
client's search covers that window through the workers' taking set (`task_contracts.wire.TAKING_KEY`,
read by `_direct.DirectPublisher.find`): UNKNOWN only when no message was found and no worker still
held one unrecorded.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from task_contracts.wire import (
    CANCEL_TOKEN_FIELD,
    REMOTE_REVOKED,
    RESULT_KEY_PREFIX,
    REVOKED_KEY_PREFIX,
    RUNNING_KEY_PREFIX,
)

from ._schedule import utcnow

#: How long a cancel mark and the REVOKED record it stores are kept once the call is due
#: (Celery's default `result_expires`): a message redelivered later than that is not stopped.
KEEP_SECONDS = 86_400.0


class CancelResult(enum.StrEnum):
    """What `cancel()` did; the value is a short word, `str()` of the member is that word too."""

    #: It had not started: it never runs, and its waiters get `TaskCancelled` (or `TaskExpired`) now.
    CANCELLED = "cancelled"
    #: It was running and its contract is interruptible: the worker stops it; waiters get `TaskCancelled`.
    TERMINATED = "terminated"
    #: It is running and its contract is not interruptible: it finishes, but is never retried or run again.
    RUNNING = "running"
    #: It had already finished: nothing was changed.
    FINISHED = "finished"
    #: No call with this id is queued, running or finished (a typo?): no record is stored; only a
    #: cancel mark is kept (a day), so that a message with this id, if one turns up, never runs.
    UNKNOWN = "unknown"


def cancel_call(
    task_id: str, reason: str, ttl: int, token: str, digest: str | None = None, *, unseen: bool = False
) -> tuple[list[str], list[Any]]:
    """The script's keys and arguments for cancelling `task_id` with `reason`; `token`: the call's
    cancel token, which the mark and the REVOKED record carry (workers and callers check it);
    `digest`: of the call's arguments, when this client published it; `unseen`: no message with this
    id was found on the broker, so without a record or a running mark it is unknown."""
    record: dict[str, Any] = {
        "status": "REVOKED",
        "result": {"exc_type": REMOTE_REVOKED, "exc_message": [reason], "exc_module": "celery.exceptions"},
        "traceback": None,
        "children": [],
        "date_done": utcnow().isoformat(),
        "task_id": task_id,
        CANCEL_TOKEN_FIELD: token,
    }
    keys = [RESULT_KEY_PREFIX + task_id, RUNNING_KEY_PREFIX + task_id, REVOKED_KEY_PREFIX + task_id]
    mark = json.dumps({"reason": reason, "token": token})
    return keys, [mark, ttl, json.dumps(record), "1" if unseen else "0", digest or ""]


def read_verdict(reply: Any) -> tuple[CancelResult, bool]:
    """The script's reply as `(result, interruptible)`; `interruptible` only matters when running."""
    verdict, detail = (_text(part) for part in reply)
    if verdict == "finished":
        return CancelResult.FINISHED, False
    if verdict == "cancelled":
        return CancelResult.CANCELLED, False
    if verdict == "unknown":
        return CancelResult.UNKNOWN, False
    try:
        interruptible = bool(json.loads(detail).get("interruptible"))
    except (ValueError, AttributeError):
        interruptible = False
    return (CancelResult.TERMINATED if interruptible else CancelResult.RUNNING), interruptible


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
