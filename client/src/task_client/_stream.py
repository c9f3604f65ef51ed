"""Streams of calls of one contract (`imap`, `as_completed`): no waiting here, shared by sync and async.

A stream pulls its calls lazily from the caller's iterable and keeps at most `max_in_flight` of
them published and unanswered: a new message is published only once earlier ones have been
answered (back-pressure), so neither the calls nor their results are ever all held at once. Each
message's record arrives through the result watcher, which calls `on_done` from its thread; the
facades wait for those notices in their own way (a thread queue, or an asyncio queue).

Cancelling (the generator closed, Ctrl-C, task cancellation) revokes every message still
unanswered with Celery's `revoke` broadcast: a worker that receives one of them afterwards acks it
without running it and stores a REVOKED record; a call already running finishes. Revokes live in
the running workers' memory (Celery's own mechanism), so a worker started later may still run a
message revoked before it started.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from task_contracts import Contract

from ._batch import ArgSet, Batch, BatchMessage, check_chunk_size
from ._errors import InvalidArguments, TaskError
from ._runtime import CallOptions, Runtime
from ._watcher import Record

R = TypeVar("R")

#: Calls published and not yet answered, at most, when a stream is given no `max_in_flight`:
#: 40 chunks of 250, enough to keep a few worker processes busy, ~1 MB of results at most.
DEFAULT_MAX_IN_FLIGHT = 10_000

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)  # compared and hashed by identity
class Pending:
    """One published message of a stream, waiting for its record."""

    batch: Batch[Any]
    message: BatchMessage
    future: concurrent.futures.Future[Record]

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
    """The calls of one `imap` or `as_completed`, published through a bounded window."""

    def __init__(
        self,
        runtime: Runtime,
        contract: Contract[..., R],
        options: CallOptions,
        arg_sets: Iterable[ArgSet],
        *,
        chunk_size: int | None,
        max_in_flight: int | None,
        on_done: Callable[[Pending], None],
    ) -> None:
        self._runtime = runtime
        self._contract = contract
        self._options = options
        self._limit = check_max_in_flight(max_in_flight)
        # A message never carries more calls than may be in flight.
        self._size = min(check_chunk_size(chunk_size), self._limit)
        # Refill once a quarter of the window is free: a few pipelined publishes, not one per answer.
        self._refill_at = max(self._size, self._limit // 4)
        self._arg_sets: Iterator[ArgSet] = iter(arg_sets)
        self._next_index = 0
        self._exhausted = False
        self._in_flight = 0
        self._on_done = on_done
        #: The first invalid call met: raised once every call before it has been handed out.
        self._invalid: InvalidArguments | None = None
        #: Published messages not yet handed out, in publish (= input) order (a dict: O(1) removal).
        self.pending: dict[Pending, None] = {}

    @property
    def calls_in_flight(self) -> int:
        return self._in_flight

    def head(self) -> Pending:
        """The oldest message not yet handed out."""
        return next(iter(self.pending))

    def plan(self) -> Batch[R] | None:
        """Validate the next calls that fit in the window and start watching them; None if none fit.

        An invalid call stops the stream: none of the calls planned with it is published, and
        `finish` raises its `InvalidArguments` (naming its index in the stream) once the calls
        published before it have been handed out.
        """
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
            self._invalid, self._exhausted = error, True
            return None
        self._next_index += batch.size
        futures = self._runtime.watcher.watch_many(batch.task_ids)
        for message, future in zip(batch.messages, futures, strict=True):
            pending = Pending(batch, message, future)
            self.pending[pending] = None
            future.add_done_callback(functools.partial(self._notify, pending))
        self._in_flight += batch.size
        return batch

    def publish(self, batch: Batch[R]) -> None:
        """Publish a planned batch pipelined (blocking I/O: the async facade runs it in an executor)."""
        try:
            self._runtime.publish_batch(batch, self._options)
        except BaseException:
            self._drop(batch)
            raise

    def outcomes(self, pending: Pending, bound: float) -> list[Any]:
        """Take `pending` out of the stream; one value or `TaskError` per call of its message, in order."""
        del self.pending[pending]
        self._in_flight -= pending.message.count
        future = pending.future
        task_id = pending.message.task_id
        if future.done() and not future.cancelled() and future.exception() is not None:
            # The client was closed (or its result connection lost for good) while waiting.
            error = self._runtime.backend_unavailable(self._contract.name, task_id, future.exception())
            return [error] * pending.message.count
        return pending.batch.message_outcomes(
            pending.message,
            future,
            lambda task_id, future: self._runtime.give_up(self._contract.name, task_id, future, bound),
        )

    def finish(self) -> None:
        """Called once every published call has been handed out: raise the invalid call met, if any."""
        if self._invalid is not None:
            raise self._invalid

    def cancel(self) -> None:
        """Stop watching every unanswered message and revoke it, so that queued calls do not run."""
        unanswered = [pending for pending in self.pending if not pending.future.done()]
        for pending in list(self.pending):
            self._runtime.watcher.forget(pending.message.task_id, pending.future)
        self.pending.clear()
        self._in_flight = 0
        self._exhausted = True
        if unanswered:
            self._runtime.revoke([pending.message.task_id for pending in unanswered])

    def _notify(self, pending: Pending, _future: concurrent.futures.Future[Record]) -> None:
        self._on_done(pending)

    def _drop(self, batch: Batch[R]) -> None:
        ids = set(batch.task_ids)
        for pending in [pending for pending in self.pending if pending.message.task_id in ids]:
            self._runtime.watcher.forget(pending.message.task_id, pending.future)
            del self.pending[pending]
        self._in_flight -= batch.size


def raise_or_keep(outcome: Any, return_exceptions: bool) -> Any:
    """The outcome as a stream yields it: a `TaskError` is raised unless `return_exceptions`."""
    if isinstance(outcome, TaskError) and not return_exceptions:
        raise outcome
    return outcome
