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

import operator
from collections.abc import Mapping, Sequence
from typing import Any

from task_contracts.wire import call_digest

from ._pipelined import PendingReply
from ._unacked import REMOVAL_KEY

#: Key of Celery's request dict (so an attribute of the task's request on the thread): the verdict asked for.
ASKED_KEY = "task_sdk_early_admission"
#: Key of Celery's request dict: the argument digest the verdict was asked with (`EarlyDigest`).
DIGEST_KEY = "task_sdk_early_digest"


class EarlyDigest:
    """The digest of one delivery's arguments (`call_digest`) as its admission was asked early,
    with the very argument objects it was computed from."""

    __slots__ = ("args", "digest", "kwargs")

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any], digest: str | None) -> None:
        self.args, self.kwargs, self.digest = args, kwargs, digest

    def covers(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        """Whether `args` and `kwargs` hold the same objects it was computed from, so the same JSON."""
        mine, named = self.args, self.kwargs
        return (
            len(args) == len(mine)
            and all(map(operator.is_, args, mine))
            and len(kwargs) == len(named)
            and all(kwargs.get(name, self) is value for name, value in named.items())
        )


def digest_asked_with(request: Any) -> str | None:
    """The digest of a Celery request's (one delivery's) arguments, kept for its call's body (`digest_of_call`)."""
    args, kwargs = request.args, request.kwargs
    digest = call_digest(args, kwargs)
    request.request_dict[DIGEST_KEY] = EarlyDigest(args, kwargs, digest)
    return digest


def digest_of_call(task_request: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """`call_digest(args, kwargs)` of the arguments a call runs with: the one its early admission was
    asked with when computed from these very objects (nothing runs between, so they hold the same
    values), else computed now. A message header of the same name is never an `EarlyDigest`."""
    early = getattr(task_request, DIGEST_KEY, None)
    if isinstance(early, EarlyDigest):
        setattr(task_request, DIGEST_KEY, None)
        headers = getattr(task_request, "headers", None)
        if isinstance(headers, dict):  # nor in the custom headers a retry's message carries (as `claim_admission`)
            headers.pop(DIGEST_KEY, None)
        if early.covers(args, kwargs):
            return early.digest
    return call_digest(args, kwargs)


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
        headers.pop(DIGEST_KEY, None)  # and the digest it was asked with
    return asked
