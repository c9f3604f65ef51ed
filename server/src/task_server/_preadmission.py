"""Admission asked for as a call is handed to a thread, and answered by the time the thread starts it.

A call served by the worker's threads (`_threads`) used to ask Redis whether it may start
(`_admission`) from its thread: a round trip after the thread had woken up, on the path of every
call (~130 µs in a timeline of `client.add(4, 7)`). When a thread is free to start the call at
once, the main thread now writes that same script as it hands the call over, without waiting;
by the time the thread has woken and set the call up, the reply is usually there to be read.

Only then: a call that would wait for a thread keeps asking from its thread, so its start is
counted, its running mark set and its concurrency slot taken when it starts, not while it waits
(a cancel meanwhile still stops it). The verdict and what the worker does with it are unchanged.
"""

from __future__ import annotations

import collections
import threading

from ._pipelined import Reply

#: Verdicts asked for and not yet claimed, at most (one for a call that was then not run, e.g.
#: its arguments were invalid, is dropped after this many newer ones).
MAX_WAITING = 10_000


_asked: collections.OrderedDict[tuple[str, int], Reply] = collections.OrderedDict()
_asked_lock = threading.Lock()


def remember_asked(task_id: str, retries: int, reply: Reply) -> None:
    """Keep the pending verdict of one start of a call until its thread claims it.

    Keyed by id and attempt only, so an entry left unclaimed may be claimed by another message with
    the same id: the call's digest is therefore always computed from the arguments it runs with."""
    with _asked_lock:
        _asked[(task_id, retries)] = reply
        while len(_asked) > MAX_WAITING:
            _asked.popitem(last=False)


def claim_admission(task_id: str, retries: int) -> Reply | None:
    """The verdict asked for this start of the call as it was handed over, or None if none was."""
    if not _asked:
        return None
    with _asked_lock:
        return _asked.pop((task_id, retries), None)
