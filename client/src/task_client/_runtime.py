"""The I/O core shared by every client facade: publish a call, watch and fetch its record."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from task_contracts import ArgumentsError, Contract, redact_url
from task_contracts.wire import REVOKED_CANCELLED, REVOKED_EXPIRED

from ._batch import Batch
from ._cancel import CANCEL_SCRIPT, KEEP_SECONDS, CancelResult, cancel_call, read_verdict
from ._errors import BrokerUnavailable, InvalidArguments, TaskError
from ._outcome import timeout_error
from ._producer import Outgoing, Producer, call_headers
from ._reasons import connection_failure
from ._schedule import Schedule
from ._settings import ClientSettings
from ._watcher import READY_STATES, Record, ResultWatcher, WatcherClosed


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


class Runtime:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.producer = Producer(settings)
        self.watcher = ResultWatcher(settings)
        self.backend = redact_url(settings.urls.result_backend)

    def prepare_call(
        self,
        contract: Contract[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: CallOptions,
    ) -> Outgoing:
        """Validate one call and build its message; raise `InvalidArguments` before any I/O."""
        try:
            wire_args, wire_kwargs = contract.encode_arguments(args, kwargs)
        except ArgumentsError as error:
            raise InvalidArguments(str(error), contract=contract.name, problems=error.problems) from None
        schedule = options.schedule()
        return Outgoing(
            contract.name,
            wire_args,
            wire_kwargs,
            options.queue or contract.queue,
            str(uuid.uuid4()),
            call_headers(contract.fingerprint),
            None,
            *((schedule.eta, schedule.expires, schedule.priority) if schedule else ()),
        )

    def publish_call(
        self,
        contract: Contract[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: CallOptions,
    ) -> Outgoing:
        """Validate and publish one call; return its message (task id and schedule)."""
        message = self.prepare_call(contract, args, kwargs, options)
        self.producer.publish(message, contract=contract.name)
        return message

    def start_batch(
        self, batch: Batch[Any], options: CallOptions
    ) -> tuple[list[concurrent.futures.Future[Record]], Schedule | None]:
        """Watch and publish every message of a validated batch; return one future per message.

        Watching first lets the subscriptions travel while the batch is published; a record
        stored before its subscription is confirmed is still found by the watcher's read.
        """
        futures = self.watcher.watch_many(batch.task_ids)
        try:
            schedule = self.publish_batch(batch, options)
        except BaseException:
            for task_id, future in zip(batch.task_ids, futures, strict=True):
                self.watcher.forget(task_id, future)
            raise
        return futures, schedule

    def publish_batch(self, batch: Batch[Any], options: CallOptions) -> Schedule | None:
        """Publish every message of a validated batch through one pipelined connection; return their schedule."""
        schedule = options.schedule()
        queue = options.queue or batch.contract.queue
        self.producer.publish_many(batch.outgoing(queue, schedule), contract=batch.contract.name)
        return schedule

    def give_up(
        self, contract: str | None, task_id: str, future: concurrent.futures.Future[Record], timeout: float
    ) -> TaskError:
        """Stop watching a call whose bound ran out; return the error it met.

        Unlike `wait`, no last read of the backend: async callers and batches must not block on it.
        """
        self.watcher.forget(task_id, future)
        if self.watcher.is_disconnected():
            return self.backend_unavailable(contract, task_id, self.watcher.last_error)
        return timeout_error(contract, task_id, timeout)

    def fetch(self, contract: str | None, task_id: str) -> Record | None:
        """The stored record now (None while pending), within the socket bounds."""
        try:
            return self.watcher.fetch(task_id).result(timeout=self._io_bound)
        except Exception as error:
            raise self.backend_unavailable(contract, task_id, error) from None

    def wait(self, contract: str | None, task_id: str, timeout: float, schedule: Schedule | None = None) -> Record:
        """The task's ready record, waiting at most `timeout` seconds (then `last_look`).

        With an expiry before then: at expiry a call not yet started is revoked as expired (its
        REVOKED record then arrives like any other), so a call no worker ever saw ends there too.
        """
        future = self.watcher.watch(task_id)
        deadline = time.monotonic() + timeout
        expires_in = schedule.expires_in() if schedule else None
        record: Record | None
        try:
            if expires_in is not None and expires_in < timeout:
                try:
                    record = future.result(timeout=expires_in)
                except concurrent.futures.TimeoutError:
                    self.cancel(contract, task_id, REVOKED_EXPIRED, schedule)
                    record = future.result(timeout=max(0.0, deadline - time.monotonic()))
            else:
                record = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self.watcher.forget(task_id, future)
            record = None
        except WatcherClosed as error:
            raise self.backend_unavailable(contract, task_id, error) from None
        if record is None:  # outside the except block, so no error chains onto the TimeoutError
            record = self.last_look(contract, task_id, timeout)
        return record

    def last_look(self, contract: str | None, task_id: str, timeout: float) -> Record:
        """After a wait ran out: the record if it is ready after all, else the error that says why not.

        One bounded read (at most `connect_timeout + socket_timeout`) finds a result whose message
        was missed, and tells a frozen or lost backend (`BrokerUnavailable`) from a task that is
        merely pending (`TaskTimeout`), so no caller is told to wait again on a dead backend.
        """
        record = self.fetch(contract, task_id)
        if record is not None and record.get("status") in READY_STATES:
            return record
        raise timeout_error(contract, task_id, timeout)

    def cancel(
        self,
        contract: str | None,
        task_id: str,
        reason: str = REVOKED_CANCELLED,
        schedule: Schedule | None = None,
    ) -> CancelResult:
        """Cancel a call (see `_cancel`); terminate it if it runs and its contract is interruptible.

        With `reason` "expired" a running call is left to finish: expiry only stops calls not started.
        """
        ttl = schedule.revoke_ttl(KEEP_SECONDS) if schedule else int(KEEP_SECONDS)
        keys, args = cancel_call(task_id, reason, ttl)
        try:
            reply = self.watcher.evaluate(CANCEL_SCRIPT, keys, args).result(timeout=self._io_bound)
        except Exception as error:
            raise self.backend_unavailable(contract, task_id, error) from None
        result, interruptible = read_verdict(reply)
        if not interruptible:
            return result
        if reason == REVOKED_EXPIRED:
            return CancelResult.RUNNING
        self.producer.terminate(task_id, contract=contract)
        return result

    @property
    def _io_bound(self) -> float:
        return self.settings.connect_timeout + self.settings.socket_timeout

    def backend_unavailable(self, contract: str | None, task_id: str, error: BaseException | None) -> BrokerUnavailable:
        reason = connection_failure(error, self.settings)
        return BrokerUnavailable(
            f"result backend {self.backend} is unavailable: {reason}",
            url=self.backend,
            contract=contract,
            task_id=task_id,
        )

    def close(self) -> None:
        self.watcher.close()
        self.producer.close()
