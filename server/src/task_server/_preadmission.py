"""Admission asked for as a call is handed to a thread, and answered by the time the thread starts it.

A call served by the worker's threads (`_threads`) used to ask Redis whether it may start
(`_admission`) from its thread: a round trip after the thread had woken up, on the path of every
call (~130 µs in a timeline of `client.add(4, 7)`). When a thread is free to start the call at
once, the main thread now writes that same script as it hands the call over, without waiting;
by the time the thread has woken and set the call up, the reply is usually there to be read.

Only then: a call that would wait for a thread keeps asking from its thread, so its start is
counted, its running mark set and its concurrency slot taken when it starts, not while it waits
(a cancel meanwhile still stops it). The verdict and what the worker does with it are unchanged.

The pending verdict travels with the delivery it was asked for: in Celery's request dict, which the
thread's task request is built from. It was kept by task id and attempt in a table of its own,
where a verdict left unclaimed (its call dropped before it ran) or asked for one delivery could be
claimed by another message with the same id and attempt, which then ran on a verdict computed for
another call's arguments instead of being refused as `DuplicateTaskId`.
"""

from __future__ import annotations

from typing import Any

from ._pipelined import PendingReply
from ._unacked import REMOVAL_KEY

#: Key of Celery's request dict (so an attribute of the task's request on the thread): the verdict asked for.
ASKED_KEY = "task_sdk_early_admission"


def remember_asked(request: Any, reply: PendingReply) -> None:
    """Keep the pending verdict of a Celery request (one delivery) for the thread that starts it."""
    request.request_dict[ASKED_KEY] = reply


def claim_admission(task_request: Any) -> PendingReply | None:
    """The verdict asked for this delivery as it was handed over (once), or None if none was.

    A message header of the same name is a JSON value, never a pending reply: it claims nothing."""
    asked = getattr(task_request, ASKED_KEY, None)
    if not isinstance(asked, PendingReply):
        return None
    setattr(task_request, ASKED_KEY, None)
    headers = getattr(task_request, "headers", None)
    if isinstance(headers, dict):
        # Celery's context may count it among the request's custom headers, which a retry's message
        # carries: a pending reply there failed the retry (not JSON) and meant nothing to its worker.
        headers.pop(ASKED_KEY, None)
        headers.pop(REMOVAL_KEY, None)  # the same for the unacked entry's removal (`_unacked.RemovalAtStore`)
    return asked
