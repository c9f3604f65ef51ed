"""The I/O core every face shares: what publishing, waiting and reading do, written once as steps.

The wait policy lives here and nowhere else: wait for the record at most `timeout` seconds; when
the bound runs out, stop watching and make one bounded read of the backend, which finds a result
whose message was missed and tells a lost backend (`BrokerUnavailable`) from a task that is merely
pending (`TaskTimeout`). Batches follow the same policy with one read for all unfinished messages.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from task_contracts import ArgumentsError, Contract, redact_url
from task_contracts.wire import (
    CANCEL_HASH_HEADER,
    CANCEL_SCRIPT,
    DELIVERIES_KEY_PREFIX,
    RESULT_KEY_PREFIX,
    REVOKED_CANCELLED,
    REVOKED_EXPIRED,
    RUNNING_KEY_PREFIX,
    cancel_hash,
)

from ._batch import Batch, when_all_done
from ._cancel import KEEP_SECONDS, CancelResult, cancel_call, read_verdict
from ._canvas import CanvasPublisher
from ._errors import BrokerUnavailable, ClientClosed, InvalidArguments, InvalidOptions, TaskError
from ._ids import MadeAhead, new_id
from ._outcome import timeout_error
from ._producer import Confirmation, Outgoing, Producer, call_headers
from ._reasons import connection_failure
from ._schedule import Schedule
from ._settings import ClientSettings
from ._steps import TIMED_OUT, Blocking, Publish, Steps, Wait
from ._tracing import Tracing
from ._watcher import READY_STATES, Record, ResultWatcher

# KEYS: record, running. How many of the two exist.
_EXISTS = "return redis.call('exists', KEYS[1], KEYS[2])"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallOptions:
    """Per-call SDK options; `None` means the contract's own value."""

    timeout: float | None = None
    queue: str | None = None
    countdown: float | None = None
    eta: datetime | None = None
    expires: float | datetime | None = None
    priority: int | None = None

    def schedule(self) -> Schedule | None:
        """The absolute schedule of a call published now (None when none is asked for)."""
        return Schedule.resolve(self.countdown, self.eta, self.expires, self.priority)


#: Seconds a call waits for its record before it reads the broker's reply to its publish (see
#: `Runtime._wait_published`): most records come sooner, and the reply is then read without a wait.
CONFIRM_AFTER = 0.05
#: How long a caller whose call is still running at its bound waits for the hard time limit's
#: failure record (the worker's kill and store take milliseconds; a loaded machine, more).
KILL_GRACE = 2.0
_EXISTS = "return redis.call('EXISTS', KEYS[1], KEYS[2])"


class Runtime:
    """One client's connections (a producer, a result watcher) and the steps that use them.

    A forked child gets connections of its own at the fork (`_forked`): a client made before a fork
    (at import, in a prefork server's master) serves its calls in the child as in the parent.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._connect(ResultWatcher(settings))
        self.backend = redact_url(settings.urls.result_backend)
        # One read of the backend takes at most a connection and a reply.
        self.read_bound = settings.connect_timeout + settings.socket_timeout
        self.closed = False
        # None unless tracing is asked for: the untraced path stays one `is None` test per publish.
        self.tracing = Tracing() if settings.tracing else None
        # The next call's id and cancel hash, made while an earlier call waited (`call`).
        self._identities = MadeAhead(self._new_identity)
        _runtimes.add(self)

    def _connect(self, watcher: ResultWatcher) -> None:
        """This process's connection objects (none connects before its first use)."""
        self.watcher = watcher
        self.producer = Producer(self.settings, reply_to=watcher.reply_channel)
        self.canvas = CanvasPublisher(self.settings)  # workflows; builds its Celery app when first used

    def _forked(self) -> None:
        """In a forked child: new connection objects and a reply channel of its own.

        The parent's are left as they are, neither used nor closed: their sockets are the parent's
        connections too (a py-amqp close, a pub/sub read or a half-read reply here would break the
        parent's), and their threads did not survive the fork. Nothing connects until the child's
        first call. The calls the parent published stay known (`RecordCheck`), so a handle made
        before the fork is still waited for, read and cancelled in the child.
        """
        if self.closed:
            return  # its calls raise `ClientClosed`, as in the parent
        _left_to_parent.append((self.watcher, self.producer, self.canvas))
        check = self.watcher.check
        check.forked()
        self._connect(ResultWatcher(self.settings, check))

    # -- publishing --------------------------------------------------------------
    def cancel_hash(self, task_id: str) -> str:
        """The `cancel_hash` header of a call: only a mark with its token (`_integrity`) cancels it."""
        return cancel_hash(self.watcher.check.cancel_token(task_id))

    def _new_identity(self) -> tuple[str, str]:
        """A new call's id and its cancel hash."""
        task_id = new_id()
        return task_id, self.cancel_hash(task_id)

    def prepare_call(
        self,
        contract: Contract[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: CallOptions,
    ) -> Outgoing:
        """Validate one call and build its message; raise `InvalidArguments` before any I/O."""
        if self.closed:
            raise ClientClosed("the client is closed")
        try:
            wire_args, wire_kwargs = contract.encode_arguments(args, kwargs)
        except ArgumentsError as error:
            raise InvalidArguments(str(error), contract=contract.name, problems=error.problems) from None
        try:
            schedule = options.schedule()
        except OverflowError as error:  # checked by `with_options`, unless it was far enough then
            raise InvalidOptions(
                f"{contract.name}: countdown/expires too far in the future ({error}): at most year 9999",
                contract=contract.name,
            ) from None
        task_id, task_cancel_hash = self._identities.take()
        # Records of another call that reuses this id are refused by the digest of these arguments,
        # computed once the message is written (`settle`, `_integrity`).
        self.watcher.check.expect(task_id, wire_args, wire_kwargs)
        return Outgoing(
            contract.name,
            wire_args,
            wire_kwargs,
            options.queue or contract.queue,
            task_id,
            {**call_headers(contract), CANCEL_HASH_HEADER: task_cancel_hash},
            None,
            *((schedule.eta, schedule.expires, schedule.priority) if schedule else ()),
        )

    def publish(
        self,
        contract: Contract[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: CallOptions,
    ) -> Steps[tuple[str, Schedule | None]]:
        """Validate and publish one call; its task id and schedule."""
        message = self.prepare_call(contract, args, kwargs, options)
        try:
            if self.tracing is None:
                yield Publish(message, contract.name)
            else:
                yield from self.tracing.traced([message], _publish_one)
        finally:  # also when the publish failed: the arguments are not kept, only their digest
            self.watcher.check.settle(message.task_id)
        return message.task_id, Schedule.of(message)

    def call(
        self,
        contract: Contract[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: CallOptions,
        timeout: float,
    ) -> Steps[tuple[str, Record]]:
        """Validate and publish one call, then wait for its ready record as `wait` does.

        Hot path: the watch is registered before the message is published, and the record comes on
        the client's reply channel: no command of its own (see `_watcher`).
        """
        message = self.prepare_call(contract, args, kwargs, options)
        future = self.watcher.watch(message.task_id, replied=True, waited=True)
        confirmation: Confirmation | None = None
        try:
            if self.tracing is None:
                # The broker's reply is read while waiting (`_wait_published`), not before.
                confirmation = yield Publish(message, contract.name, confirm_later=True)
            else:
                yield from self.tracing.traced([message], _publish_one)
        except BaseException:
            self.watcher.forget(message.task_id, future)
            self.watcher.check.settle(message.task_id)  # the arguments are not kept, only their digest
            raise
        # The worker has the message now: what the record's check needs, and the next call's id, are
        # made while it runs (measured: -8 to -15 us of thread CPU before the next call's LPUSH).
        self.watcher.check.settle(message.task_id)
        self._identities.prepare()
        self.watcher.make_spare()
        schedule = Schedule.of(message)
        # The wait bound of a scheduled call counts from when it is due, not from publication.
        bound = timeout + (schedule.due_in() if schedule else 0.0)
        # A prefork contract's bound is also the worker's hard time limit (`hard_limit`).
        limit = contract.timeout if contract.cpu_bound else None
        record = yield from self.wait(contract.name, message.task_id, bound, future, schedule, limit, confirmation)
        return message.task_id, record

    def publish_batch(self, batch: Batch[Any], options: CallOptions) -> Steps[Schedule | None]:
        """Publish every message of a validated batch through one pipelined connection; their schedule."""
        queue = options.queue or batch.contract.queue
        schedule = options.schedule()
        if self.tracing is None:
            # Built on the blocking side, so an asyncio caller's loop never builds a large batch.
            yield Blocking(lambda: self._publish_batch(batch, batch.outgoing(queue, schedule, self.cancel_hash)))
        else:
            # Built here, in the caller's thread or task, where its trace context is.
            messages = batch.outgoing(queue, schedule, self.cancel_hash)
            yield from self.tracing.traced(messages, partial(self._publish_batch_steps, batch))
        return schedule

    def _publish_batch_steps(self, batch: Batch[Any], messages: list[Outgoing]) -> Steps[None]:
        yield Blocking(partial(self._publish_batch, batch, messages))

    def _publish_batch(self, batch: Batch[Any], messages: list[Outgoing]) -> None:
        if self.closed:
            raise ClientClosed("the client is closed")
        self.producer.publish_many(messages, contract=batch.contract.name)

    # -- waiting -----------------------------------------------------------------
    def wait(
        self,
        contract: str | None,
        task_id: str,
        timeout: float,
        future: concurrent.futures.Future[Record] | None = None,
        schedule: Schedule | None = None,
        hard_limit: float | None = None,
        confirmation: Confirmation | None = None,
    ) -> Steps[Record]:
        """The task's ready record, waiting at most `timeout` seconds, then one bounded read.

        `hard_limit`: the worker's hard time limit of the call, when known; a call still running
        when a bound that reaches it passes gets up to `hard_limit + KILL_GRACE` more for its
        TimeLimitExceeded record (it started before now, so it is killed within `hard_limit`).

        `confirmation`: the broker's reply to the call's publish, not read yet (`_wait_published`).

        `future`: the watch already started for it, if any. With an expiry (`schedule`) before the
        bound: at expiry a call not yet started is revoked as expired (its REVOKED record then
        arrives like any other), so a call no worker ever saw ends there too.
        """
        future = future or self.watcher.watch(task_id, waited=True)
        expires_in = schedule.expires_in() if schedule else None
        try:
            if expires_in is not None and expires_in < timeout:
                deadline = time.monotonic() + timeout
                record = yield Wait(future, expires_in)
                if record is TIMED_OUT:
                    # A new watch: an async wait that ran out has cancelled the first future.
                    self.watcher.forget(task_id, future)
                    yield from self.cancel(contract, task_id, REVOKED_EXPIRED, schedule)
                    future = self.watcher.watch(task_id, waited=True)
                    record = yield Wait(future, max(0.0, deadline - time.monotonic()))
            elif confirmation is not None:
                record = yield from self._wait_published(task_id, future, timeout, confirmation)
            else:
                record = yield Wait(future, timeout)
        except (ClientClosed, BrokerUnavailable):  # the client closed, or the publish failed
            raise
        except Exception as error:
            raise self.backend_unavailable(contract, task_id, error) from None
        except BaseException:  # the caller gave up (cancelled, interrupted): stop watching
            self.watcher.forget(task_id, future)
            raise
        if record is not TIMED_OUT:
            return record  # type: ignore[no-any-return]
        self.watcher.forget(task_id, future)
        last = yield from self._read_ready(contract, task_id)
        if last is not None:
            return last
        if hard_limit is not None and timeout >= hard_limit:
            last = yield from self._past_hard_limit(contract, task_id, hard_limit)
            if last is not None:
                return last
        raise timeout_error(contract, task_id, timeout, self.watcher.check.refused(task_id))

    def _past_hard_limit(self, contract: str | None, task_id: str, hard_limit: float) -> Steps[Record | None]:
        """The ready record of a call whose bound reached the worker's hard time limit (a prefork
        contract), or None when it has not started.

        A call running now is killed at most `hard_limit` after its start, which was before now (it
        may have waited behind busy pool processes), and its TimeLimitExceeded record follows: it is
        waited for, so that the caller learns the failure, not a TaskTimeout; it usually comes within
        moments. A call not running may have ended since the caller's last read: a warm worker kills
        a call at its hard limit moments after the caller's bound (both count the same seconds, the
        caller's from first), and stores its record with the removal of its running marks.
        """
        if not (yield from self._started(contract, task_id)):
            return (yield from self._read_ready(contract, task_id))
        future = self.watcher.watch(task_id, waited=True)
        record = yield Wait(future, hard_limit + KILL_GRACE)
        self.watcher.forget(task_id, future)
        if record is not TIMED_OUT:
            return record  # type: ignore[no-any-return]
        return (yield from self._read_ready(contract, task_id))

    def _wait_published(
        self, task_id: str, future: concurrent.futures.Future[Record], timeout: float, confirmation: Confirmation
    ) -> Steps[Any]:
        """Wait for a call whose publish reply is unread: its record, or `TIMED_OUT` at `timeout`.

        A reply that has come already (it usually has: Redis answers within microseconds, the
        worker runs the call for hundreds) is read now, while the worker runs, never waited for.
        Otherwise a record that comes within `CONFIRM_AFTER` proves the broker took the message;
        its reply, there since before the worker started, is then read at once. Otherwise the
        reply is read first. Either way a publish the broker refused or lost fails now
        (`BrokerUnavailable`, after the retry the publish would have made), not at the bound.
        """
        deadline = time.monotonic() + timeout
        # Hot path (measured): a reply already there is read first, so the read and the connection's
        # release leave the client's work between the record and the return (its thread CPU there
        # 76-100 -> 54-56 us).
        if not confirmation.arrived():
            try:
                record = yield Wait(future, min(timeout, CONFIRM_AFTER))
            except BaseException:
                confirmation.discard()
                raise
            if record is not TIMED_OUT:
                yield Blocking(confirmation.release)
                return record
        try:
            yield Blocking(confirmation)
        except BrokerUnavailable:
            self.watcher.forget(task_id, future)
            raise
        return (yield Wait(future, max(0.0, deadline - time.monotonic())))

    def run_batch(self, batch: Batch[Any], options: CallOptions, timeout: float) -> Steps[list[Any]]:
        """Every call's value or `TaskError`, in input order, waiting at most `timeout` for the batch
        (counted from when it is due, for a scheduled batch)."""
        queue = options.queue or batch.contract.queue
        schedule = options.schedule()
        futures: list[concurrent.futures.Future[Record]]
        if self.tracing is None:
            futures = yield Blocking(
                lambda: self._start_batch(batch, batch.outgoing(queue, schedule, self.cancel_hash))
            )
        else:
            # Built here, in the caller's thread or task, where its trace context is.
            messages = batch.outgoing(queue, schedule, self.cancel_hash)
            futures = yield from self.tracing.traced(messages, partial(self._start_batch_steps, batch))
        finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        when_all_done(futures, partial(_resolve, finished))
        try:
            yield Wait(finished, timeout + (schedule.due_in() if schedule else 0.0))
        except BaseException:
            self._forget_all(batch.task_ids, futures)
            raise
        ready: list[Record | None] = [future.result() if future.done() else None for future in futures]
        missing = [task_id for task_id, record in zip(batch.task_ids, ready, strict=True) if record is None]
        late: dict[str, Record | TaskError] = {}
        if missing:
            self._forget_all(batch.task_ids, futures)
            late = yield from self._read_many(batch.contract.name, missing, timeout)
        return batch.outcomes(
            [late[task_id] if record is None else record for task_id, record in zip(batch.task_ids, ready, strict=True)]
        )

    def _start_batch_steps(
        self, batch: Batch[Any], messages: list[Outgoing]
    ) -> Steps[list[concurrent.futures.Future[Record]]]:
        futures: list[concurrent.futures.Future[Record]] = yield Blocking(partial(self._start_batch, batch, messages))
        return futures

    def _start_batch(self, batch: Batch[Any], messages: list[Outgoing]) -> list[concurrent.futures.Future[Record]]:
        # Watched before publishing: the records come on the client's reply channel.
        futures = self.watcher.watch_many(batch.task_ids, replied=True)
        try:
            self._publish_batch(batch, messages)
        except BaseException:
            self._forget_all(batch.task_ids, futures)
            raise
        return futures

    def _forget_all(self, task_ids: Sequence[str], futures: Sequence[concurrent.futures.Future[Record]]) -> None:
        for task_id, future in zip(task_ids, futures, strict=True):
            if not future.done():
                self.watcher.forget(task_id, future)

    def _read_many(self, contract: str, task_ids: list[str], timeout: float) -> Steps[dict[str, Record | TaskError]]:
        """The batch's last look: each unfinished message's ready record, or why there is none."""
        try:
            records = yield Wait(self.watcher.fetch_many(task_ids), self.read_bound)
        except ClientClosed:
            raise
        except Exception as error:
            records = error
        found: dict[str, Record | TaskError] = {}
        for index, task_id in enumerate(task_ids):
            if records is TIMED_OUT or isinstance(records, Exception):
                failure = None if records is TIMED_OUT else records
                found[task_id] = self.backend_unavailable(contract, task_id, failure)
            elif records[index] is not None and records[index].get("status") in READY_STATES:
                found[task_id] = records[index]
            else:
                found[task_id] = timeout_error(contract, task_id, timeout, self.watcher.check.refused(task_id))
        return found

    # -- reading -----------------------------------------------------------------
    def is_known(self, task_id: str, queues: Sequence[str]) -> Steps[bool | None]:
        """Whether a call with this id exists: a record, a running mark, or its message on `queues`
        (or delivered, unacknowledged). None when the broker cannot be searched (not plain Redis,
        or a queue too long to read)."""
        keys = [RESULT_KEY_PREFIX + task_id, RUNNING_KEY_PREFIX + task_id]
        if (yield from self._backend_reply(None, task_id, self.watcher.evaluate(_EXISTS, keys, []))):
            return True
        queued: bool | None = yield Blocking(partial(self.producer.find_message, task_id, queues))
        if queued is not False:
            return queued
        # It may have finished (and left the queue) while the broker was searched.
        return bool((yield from self._backend_reply(None, task_id, self.watcher.evaluate(_EXISTS, keys, []))))

    def _started(self, contract: str | None, task_id: str) -> Steps[bool]:
        """Whether the call has started and not finished: its start counter or running mark exists."""
        keys = [DELIVERIES_KEY_PREFIX + task_id, RUNNING_KEY_PREFIX + task_id]
        try:
            reply = yield from self._backend_reply(contract, task_id, self.watcher.evaluate(_EXISTS, keys, []))
        except BrokerUnavailable:  # e.g. an ACL user that may not read the start counter: plain TaskTimeout
            return False
        return bool(reply)

    def _read_ready(self, contract: str | None, task_id: str) -> Steps[Record | None]:
        """The stored record now if the call has ended (None while pending or running), as `read`."""
        last = yield from self.read(contract, task_id)
        return last if last is not None and last.get("status") in READY_STATES else None

    def read(self, contract: str | None, task_id: str) -> Steps[Record | None]:
        """The stored record now (None while pending), within `read_bound`."""
        record: Record | None = yield from self._backend_reply(contract, task_id, self.watcher.fetch(task_id))
        return record

    def _backend_reply(self, contract: str | None, task_id: str, request: concurrent.futures.Future[Any]) -> Steps[Any]:
        """The reply to one request to the result backend, within `read_bound`; else `BrokerUnavailable`."""
        try:
            reply = yield Wait(request, self.read_bound)
        except ClientClosed:
            raise
        except Exception as error:
            raise self.backend_unavailable(contract, task_id, error) from None
        if reply is TIMED_OUT:
            raise self.backend_unavailable(contract, task_id, TimeoutError("no reply from the result backend"))
        return reply

    # -- cancelling --------------------------------------------------------------
    def cancel(
        self,
        contract: str | None,
        task_id: str,
        reason: str = REVOKED_CANCELLED,
        schedule: Schedule | None = None,
        *,
        queues: Sequence[str] | None = None,
    ) -> Steps[CancelResult]:
        """Cancel a call (see `_cancel`); terminate it if it runs and its contract is interruptible.

        With `reason` "expired" a running call is left to finish: expiry only stops calls not started.
        `queues` (a cancel by id, of a call this client may never have published): where to look for
        its message first (`is_known`: not when a record or running mark exists); found nowhere, it is
        `UNKNOWN` and no record is stored.
        """
        ttl = schedule.revoke_ttl(KEEP_SECONDS) if schedule else int(KEEP_SECONDS)
        check = self.watcher.check
        # A call this client published is known without a search, which could miss it: a worker's
        # BRPOP takes a message off its queue before its unacked entry is written (`_cancel`).
        searched = queues is not None and not check.published(task_id)
        unseen = searched and (yield from self.is_known(task_id, queues or ())) is False
        token, digest = check.cancel_token(task_id), check.digest(task_id)
        keys, arguments = cancel_call(task_id, reason, ttl, token, digest, unseen=unseen)
        reply = yield from self._backend_reply(contract, task_id, self.watcher.evaluate(CANCEL_SCRIPT, keys, arguments))
        result, interruptible = read_verdict(reply)
        if not interruptible:
            return result
        if reason == REVOKED_EXPIRED:
            return CancelResult.RUNNING
        yield Blocking(partial(self.producer.terminate, task_id, contract=contract))
        return result

    def backend_unavailable(self, contract: str | None, task_id: str, error: BaseException | None) -> BrokerUnavailable:
        reason = connection_failure(error, self.settings)
        return BrokerUnavailable(
            f"result backend {self.backend} is unavailable: {reason}",
            url=self.backend,
            contract=contract,
            task_id=task_id,
        )

    def cancel_queued(self, task_ids: list[str]) -> None:
        """Cancel calls not started yet, durably (see `_cancel`), in one round trip; a running call
        finishes. Best effort, as a clean-up: waits at most `read_bound`, and logs what failed."""
        tokens = {task_id: self.watcher.check.cancel_token(task_id) for task_id in task_ids}
        cancels = [
            cancel_call(task_id, REVOKED_CANCELLED, int(KEEP_SECONDS), token) for task_id, token in tokens.items()
        ]
        try:
            self.watcher.evaluate_many(CANCEL_SCRIPT, cancels).result(timeout=self.read_bound)
        except concurrent.futures.TimeoutError:
            logger.warning("cancelling %d queued calls: the result backend did not answer in time", len(task_ids))
            return
        except Exception as error:
            logger.warning("could not cancel %d queued calls: %s", len(task_ids), error)
            return
        # Cancelled for good now; workers told so drop the messages as they come, without an admission.
        try:
            self.producer.announce_cancelled(tokens)
        except TaskError as error:
            logger.warning("could not tell workers about %d cancelled calls: %s", len(task_ids), error)

    def close(self) -> None:
        """Stop the result thread and close connections; each step is bounded. Waiting calls get `ClientClosed`."""
        self.closed = True
        self.watcher.close()
        self.producer.close()
        self.canvas.close()


#: Every live client's runtime, for `_after_fork_in_child`.
_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()
#: In a forked child: the parent's connection objects, kept from the garbage collector, which would
#: close them (see `Runtime._forked`).
_left_to_parent: list[tuple[ResultWatcher, Producer, CanvasPublisher]] = []


def _after_fork_in_child() -> None:
    for runtime in list(_runtimes):
        try:
            runtime._forked()
        except Exception:  # a fork hook cannot raise: the child's calls then fail as before, bounded
            logger.exception("task-client: could not give a forked child connections of its own")


os.register_at_fork(after_in_child=_after_fork_in_child)


def _resolve(future: concurrent.futures.Future[None]) -> None:
    # An async wait that ran out has cancelled the future; the batch finishing later is then no news.
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(None)


def _publish_one(messages: list[Outgoing]) -> Steps[None]:
    yield Publish(messages[0], messages[0].name)
