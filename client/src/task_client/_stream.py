"""Streams of calls of one contract (`imap`, `as_completed`), written once as steps.

A stream pulls its calls lazily from the caller's iterable and keeps at most `max_in_flight` of
them published and unanswered: new messages are published only once earlier ones have been
answered (back-pressure), so neither the calls nor their results are ever all held at once.
`iterate_sync` and `iterate_async` run the same steps; the faces differ only in how they wait.

Cancelling (the iterator closed, Ctrl-C, cancellation of the consuming task) cancels every call
still unanswered as `cancel()` does, durably and in one round trip (`_cancel`): a call not started
never runs, on any worker, also one started later, and its REVOKED record is stored at once; a call
already running finishes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from task_contracts import Contract

from ._batch import ArgSet, Batch, BatchMessage, check_chunk_size
from ._errors import ClientClosed, InvalidArguments, TaskError
from ._outcome import timeout_error
from ._producer import Producer
from ._runtime import CallOptions, Runtime
from ._steps import TIMED_OUT, Steps, Wait, run_async, run_sync
from ._watcher import READY_STATES, Record

R = TypeVar("R")

#: Calls published and not yet answered, at most, when a stream is given no `max_in_flight`:
#: 40 chunks of 250, enough to keep a few worker processes busy, about 1 MB of results at most.
DEFAULT_MAX_IN_FLIGHT = 10_000

#: What one step of a stream hands out: `(index in the stream, value or TaskError)` per call.
Outcomes = list[tuple[int, Any]]


@dataclass(slots=True, eq=False)  # compared and hashed by identity
class Pending:
    """One published message of a stream, waiting for its record."""

    batch: Batch[Any]
    message: BatchMessage
    future: concurrent.futures.Future[Record]
    #: `time.monotonic()` when its calls are due (a countdown or eta): its wait bound counts from then.
    due: float = 0.0

    @property
    def first(self) -> int:
        """The stream index of the message's first call."""
        return self.batch.first + self.message.first


def check_max_in_flight(max_in_flight: int | None) -> int:
    if max_in_flight is None:
        return DEFAULT_MAX_IN_FLIGHT
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise ValueError(f"max_in_flight must be a positive int, got {max_in_flight!r}")
    return max_in_flight


class Stream(Generic[R]):
    """The calls of one `imap` or `as_completed`, published through a bounded window.

    `in_order`: hand messages out in input order (`imap`), else as they finish (`as_completed`).
    `bound`: seconds each wait for the next message may take before its calls time out.
    """

    def __init__(
        self,
        runtime: Runtime,
        contract: Contract[..., R],
        options: CallOptions,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None,
        max_in_flight: int | None,
        bound: float,
        in_order: bool,
    ) -> None:
        self._runtime = runtime
        self._contract = contract
        self._options = options
        self._bound = bound
        self._in_order = in_order
        self._limit = check_max_in_flight(max_in_flight)
        # A message never carries more calls than may be in flight.
        self._size = min(check_chunk_size(chunk_size), self._limit)
        # Refill once a quarter of the window is free: a few pipelined publishes, not one per answer.
        self._refill_at = max(self._size, self._limit // 4)
        self._arg_sets: Iterator[ArgSet] = iter(arg_sets)
        self._next_index = 0
        self._exhausted = False
        self._in_flight = 0
        #: The first invalid call met: raised once every call before it has been handed out.
        self._invalid: InvalidArguments | None = None
        #: Published messages not yet handed out, in input order (a dict: O(1) removal).
        self.pending: dict[Pending, None] = {}
        # as_completed: messages answered, in the order the result thread saw them, and the
        # future a waiting step is woken by.
        self._finished: collections.deque[Pending] = collections.deque()
        self._lock = threading.Lock()
        self._wake: concurrent.futures.Future[None] | None = None

    @property
    def producer(self) -> Producer:
        return self._runtime.producer

    # -- the steps ---------------------------------------------------------------------
    def refill(self) -> Steps[None]:
        """Validate the next calls that fit in the window, watch them, publish them pipelined."""
        batch = self._plan()
        if batch is None:
            return
        try:
            schedule = yield from self._runtime.publish_batch(batch, self._options)
        except BaseException:
            self._drop(batch)
            raise
        if schedule is not None:
            due = time.monotonic() + schedule.due_in()
            for pending in self.pending:
                if pending.batch is batch:
                    pending.due = due

    def next_outcomes(self) -> Steps[Outcomes]:
        """The outcomes of the next message handed out, once it is answered (or its wait ran out)."""
        if self._in_order:
            pending = next(iter(self.pending))
            answered = yield from self._wait_for(pending.future, self._bound_from(pending.due))
            done = [pending] if answered else []
        else:
            done = yield from self._wait_for_any()
        if not done:  # nothing answered within the bound: every call still waiting times out
            done = list(self.pending) if not self._in_order else [next(iter(self.pending))]
        outcomes: Outcomes = []
        for pending in done:
            records = yield from self._record_or_error(pending)
            outcomes += [
                (pending.first + offset, outcome)
                for offset, outcome in enumerate(pending.batch.message_outcomes(pending.message, records))
            ]
        # Refill before the caller sees these: the workers stay busy while it works on them.
        yield from self.refill()
        return outcomes

    def finish(self) -> None:
        """Called once every published call has been handed out: raise the invalid call met, if any."""
        if self._invalid is not None:
            raise self._invalid

    def cancel(self) -> None:
        """Stop watching every unanswered message and cancel it, so that queued calls do not run."""
        # A wait cancelled with its consumer has cancelled its future too: that call is unanswered as well.
        unanswered = [
            pending.message.task_id
            for pending in self.pending
            if not pending.future.done() or pending.future.cancelled()
        ]
        for pending in self.pending:
            self._runtime.watcher.forget(pending.message.task_id, pending.future)
        self.pending.clear()
        self._in_flight = 0
        self._exhausted = True
        if unanswered:
            self._runtime.cancel_queued(unanswered)

    # -- inside ------------------------------------------------------------------------
    def _plan(self) -> Batch[R] | None:
        room = self._limit - self._in_flight
        if self._exhausted or room < (self._refill_at if self._in_flight else 1):
            return None
        wanted = room - room % self._size if room >= self._size else room
        items = list(itertools.islice(self._arg_sets, wanted))
        if len(items) < wanted:
            self._exhausted = True
        if not items:
            return None
        try:
            batch: Batch[R] = Batch(self._contract, items, self._size, first=self._next_index)
        except InvalidArguments as error:
            # An invalid call stops the stream: none planned with it is published, and the calls
            # published before it are still handed out before `finish` raises.
            self._invalid, self._exhausted = error, True
            return None
        self._next_index += batch.size
        futures = self._runtime.watcher.watch_many(batch.task_ids, replied=True)
        for message, future in zip(batch.messages, futures, strict=True):
            pending = Pending(batch, message, future)
            self.pending[pending] = None
            if not self._in_order:
                future.add_done_callback(functools.partial(self._on_answer, pending))
        self._in_flight += batch.size
        return batch

    def _on_answer(self, pending: Pending, _future: concurrent.futures.Future[Record]) -> None:
        # The result thread's side of `_wait_for_any`.
        with self._lock:
            self._finished.append(pending)
            wake = self._wake
        if wake is not None:
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # set already, or cancelled
                wake.set_result(None)

    def _bound_from(self, due: float) -> float:
        """The wait bound of calls due at `due`: `bound` seconds from when they are due."""
        return self._bound + max(0.0, due - time.monotonic())

    def _wait_for(self, future: concurrent.futures.Future[Record], bound: float) -> Steps[bool]:
        if future.done():
            return True
        try:
            value = yield Wait(future, bound)
        except Exception:
            return True  # the record's future failed (client closed, ...): `_record_or_error` says why
        return value is not TIMED_OUT

    def _wait_for_any(self) -> Steps[list[Pending]]:
        while True:
            with self._lock:
                while self._finished:
                    pending = self._finished.popleft()
                    if pending in self.pending:
                        return [pending]
                wake: concurrent.futures.Future[None] = concurrent.futures.Future()
                self._wake = wake
            value = yield Wait(wake, self._bound_from(min((pending.due for pending in self.pending), default=0.0)))
            if value is TIMED_OUT:
                return []

    def _record_or_error(self, pending: Pending) -> Steps[Record | TaskError]:
        """Take `pending` out of the stream: its ready record, or the error its calls met."""
        del self.pending[pending]
        self._in_flight -= pending.message.count
        name, task_id, future = self._contract.name, pending.message.task_id, pending.future
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is None:
                return future.result()
            if isinstance(error, ClientClosed):
                raise error
            return self._runtime.backend_unavailable(name, task_id, error)
        # The bound ran out: stop watching, and one bounded read finds a record whose message was missed.
        self._runtime.watcher.forget(task_id, future)
        try:
            last = yield from self._runtime.read(name, task_id)
        except TaskError as error:
            return error
        if last is not None and last.get("status") in READY_STATES:
            return last
        return timeout_error(name, task_id, self._bound)

    def _drop(self, batch: Batch[R]) -> None:
        ids = set(batch.task_ids)
        for pending in [pending for pending in self.pending if pending.message.task_id in ids]:
            self._runtime.watcher.forget(pending.message.task_id, pending.future)
            del self.pending[pending]
        self._in_flight -= batch.size


def _kept(outcome: Any, return_exceptions: bool) -> Any:
    """The outcome as a stream yields it: a `TaskError` is raised where it stands unless `return_exceptions`."""
    if isinstance(outcome, TaskError) and not return_exceptions:
        raise outcome
    return outcome


def iterate_sync(stream: Stream[Any], return_exceptions: bool, indexed: bool) -> Iterator[Any]:
    """Run the stream's steps in the caller's thread; yield each outcome, or `(index, outcome)` if `indexed`."""
    producer = stream.producer
    try:
        run_sync(producer, stream.refill())
        while stream.pending:
            for index, outcome in run_sync(producer, stream.next_outcomes()):
                kept = _kept(outcome, return_exceptions)
                yield (index, kept) if indexed else kept
        stream.finish()
    finally:
        stream.cancel()  # closed early, Ctrl-C or an error: cancel what is still queued


async def iterate_async(stream: Stream[Any], return_exceptions: bool, indexed: bool) -> AsyncIterator[Any]:
    """Await the stream's steps without blocking the loop on I/O; yield as `iterate_sync` does."""
    producer = stream.producer
    try:
        await run_async(producer, stream.refill())
        while stream.pending:
            for index, outcome in await run_async(producer, stream.next_outcomes()):
                kept = _kept(outcome, return_exceptions)
                yield (index, kept) if indexed else kept
        stream.finish()
    finally:
        stream.cancel()  # closed early, cancelled or an error: cancel what is still queued
