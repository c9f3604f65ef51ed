"""Records on the client's reply channel, read by whichever waiting thread is free to read them.

Every call this client publishes names its reply channel (`reply_to`); the worker publishes the
call's records there (and some only there: a `DuplicateTaskId` refusal). One connection,
subscribed to that channel only from the client's first use, carries them all, and one thread at
a time reads it (leader/follower); every watch of the client is registered here:

- a sync caller waiting for its call's record that finds nobody reading becomes the reader: it
  hands each record it reads to that call's waiter, and its own comes to it in its own thread,
  with no hand-off between threads (one wake-up less per call for a lone caller, measured in
  docs/performance.md);
- it reads at most `LEAD_PERIOD`, then, or once its own record came, stops; if other calls still
  wait, it wakes the reader thread of this module, which reads for them until none waits;
- async callers, batches and streams cannot read a blocking socket in their own thread: they ask
  for the reader thread (`serve`).

A record published while the connection was down is found by one read (`fetch`) once it is
subscribed again, and a watch still unanswered after `_watcher.REPLY_FALLBACK` also subscribes to
its task's own channel (`_watcher`), so an older worker answers too.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.connection
import redis.exceptions
import redis.sentinel
from pydantic_core import from_json
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.retry import Retry

from task_contracts import sentinel_address

from ._ids import MadeAhead
from ._integrity import RecordCheck
from ._pools import BoundedSentinelPool
from ._settings import ClientSettings

Record = dict[str, Any]

#: Seconds a sync caller reads the reply connection before handing the reading to the reader
#: thread: most records come sooner; a longer call then costs one wake-up, as every call did before.
LEAD_PERIOD = 0.05
#: Seconds the reader thread waits for a message before it looks again whether anyone still waits.
_SLICE = 0.5
_CLOSE_BOUND = 2.0

READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})

# What reading a lost connection can raise: redis-py's errors, the socket's, and AttributeError or
# (hiredis) TypeError when the connection is torn down under the read (`close`, as `_watcher` notes).
_CONNECTION_ERRORS = (redis.exceptions.RedisError, OSError, AttributeError, TypeError, ValueError)

# redis-py 8 bounds one read itself (`timeout=`); redis-py 6.4, the declared floor, has no such
# argument: there the socket is polled first, as `PubSub.get_message` does (a TypeError there had
# every read drop the connection, and each call waited for the reader thread: 0.5 s a call).
_READ_TAKES_TIMEOUT = "timeout" in inspect.signature(redis.connection.Connection.read_response).parameters

# Reconnect 50 ms growing to 1 s, jittered, as the result thread does.
_BACKOFF = EqualJitterBackoff(cap=1.0, base=0.05)


class ReplyFuture(concurrent.futures.Future[Record]):
    """A call's record, to come on the reply channel: a sync waiter may read it itself (`ReplyReader.lead`)."""

    def __init__(self, replies: ReplyReader) -> None:
        super().__init__()
        self.replies = replies


class ReplyReader:
    """The reply channel's connection, and who reads it now."""

    def __init__(
        self,
        settings: ClientSettings,
        channel: str,
        check: RecordCheck,
        fetch: Callable[[list[str]], concurrent.futures.Future[list[Record | None]]],
        latest: dict[str, Record],
        answered: Callable[[str], None],
    ) -> None:
        self.channel = channel
        self._settings = settings
        self._check = check
        self._fetch = fetch  # the records stored now (the result thread's MGET)
        self._latest = latest  # the latest non-final record per watched id (`ResultWatcher.latest`)
        self._answered = answered  # tells the result thread a call was answered here
        # Taken as `with self._lock` (C), the condition's own `with` is a Python call per use.
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._waiters: dict[str, list[ReplyFuture]] = {}
        self._reading = False  # a thread reads the connection now (at most one)
        self._wanted = False  # the reader thread is asked to read
        self._closed = False
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._subscribed = False  # SUBSCRIBE sent on the current connection
        self.last_error: BaseException | None = None
        self._futures = MadeAhead(lambda: ReplyFuture(self))  # made while earlier calls waited (`make_spare`)

    # -- any thread ------------------------------------------------------------
    def watch(self, task_ids: list[str], *, serve: bool) -> list[ReplyFuture]:
        """Futures for the records of these calls, as they come on the reply channel.

        `serve`: the reader thread reads for them (a batch, a stream); otherwise the caller waits
        with `lead` (sync) or calls `serve` when it starts waiting (async).
        """
        futures = [self._futures.take() for _ in task_ids]
        with self._lock:
            for task_id, future in zip(task_ids, futures, strict=True):
                self._waiters.setdefault(task_id, []).append(future)
            ready = self._pubsub is not None
        if not ready:
            self.start()
        if serve:
            self.serve()
        return futures

    def make_spare(self) -> None:
        """Make the next call's future now, while this call waits (a sequential caller's next call
        then starts without building one: a Future builds a Condition and its RLock)."""
        self._futures.prepare()

    def forget(self, task_id: str, future: concurrent.futures.Future[Record]) -> None:
        with self._lock:
            futures = self._waiters.get(task_id)
            if futures is not None:
                with contextlib.suppress(ValueError):
                    futures.remove(future)  # type: ignore[arg-type]
                if not futures:
                    del self._waiters[task_id]

    def is_watching(self, task_id: str) -> bool:
        return task_id in self._waiters

    def serve(self) -> None:
        """Make sure someone reads while calls wait: wake the reader thread if nobody reads."""
        with self._lock:
            if not self._reading and not self._wanted and self._waiters and not self._closed:
                self._wanted = True
                self._condition.notify_all()

    def lead(self, future: ReplyFuture, timeout: float | None) -> None:
        """Wait for `future` by reading the connection in this thread, if nobody else reads it,
        for at most `timeout` and `LEAD_PERIOD`; return at once otherwise (then wait on the future)."""
        with self._lock:
            if self._reading or self._closed or future.done():
                return
            if not self._subscribed:  # the connection was lost: the reader thread subscribes again
                self._wanted = True
                self._condition.notify_all()
                return
            self._reading = True
        deadline = time.monotonic() + min(LEAD_PERIOD, LEAD_PERIOD if timeout is None else timeout)
        try:
            while not future.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._read_one(left)
        except _CONNECTION_ERRORS as error:
            self.last_error = error  # the reader thread reconnects; this caller waits as a follower
            self._drop_connection()
        finally:
            self._step_down()

    def _step_down(self) -> None:
        """Stop reading; the reader thread reads on while calls still wait."""
        with self._lock:
            self._reading = False
            if self._closed:
                self._disconnect()
            elif self._waiters:
                self._wanted = True
                self._condition.notify_all()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._waiters.clear()
            self._condition.notify_all()
            thread, pubsub = self._thread, self._pubsub
        if pubsub is not None and pubsub.connection is not None:
            # Wakes a thread reading it now (shut down, the socket reads as closed) instead of
            # waiting for its read's bound; that thread then stops, having nothing left to do.
            with contextlib.suppress(*_CONNECTION_ERRORS):
                pubsub.connection.disconnect()
        if thread is not None:
            thread.join(timeout=_CLOSE_BOUND)
        with self._lock:
            # A thread still reading (a frozen server) closes it when it stops (`_step_down`).
            if not self._reading:
                self._disconnect()

    # -- reading (one thread at a time) --------------------------------------------
    def start(self) -> None:
        """Start the reader thread, which subscribes at once (the first use of the client).

        Not in the caller's thread: a frozen server would hold it for a socket timeout. A record
        published before the subscription is found by the read that follows its confirmation.
        """
        with self._lock:
            if self._pubsub is not None or self._closed:
                return
            self._client = self._connect()  # no I/O yet
            # Messages as read: redis-py's default handler logs each one's repr, at debug level.
            self._pubsub = self._client.pubsub(push_handler_func=_as_read)  # type: ignore[no-untyped-call]
            self._wanted = True
            self._thread = threading.Thread(target=self._run, name="task-client-replies", daemon=True)
            self._thread.start()

    def _connect(self) -> redis.Redis:
        settings = self._settings
        url = settings.urls.result_backend
        # No retries inside redis-py: a lost connection is this module's to reconnect (`_run`).
        bounds: dict[str, Any] = {
            "socket_connect_timeout": settings.connect_timeout,
            "socket_timeout": settings.socket_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        if not url.startswith("sentinel:"):
            return redis.Redis.from_url(url, **bounds)
        # The master is whichever Redis the sentinels name now: a reconnect asks them again.
        address = sentinel_address(url)
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            address.sentinels,
            sentinel_kwargs={k: bounds[k] for k in ("socket_connect_timeout", "socket_timeout")},
            **bounds,
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            address.master_name,
            connection_pool_class=BoundedSentinelPool,
            db=address.db,
            username=address.username,
            password=address.password,
            max_connections=1,
            timeout=settings.pool_timeout,
        )
        return master

    def _subscribe(self) -> None:
        try:
            self._pubsub.subscribe(self.channel)
            self._subscribed = True
        except _CONNECTION_ERRORS as error:
            self.last_error = error
            self._drop_connection()

    def _run(self) -> None:
        failures = 0
        while True:
            with self._lock:
                while not self._closed and (self._reading or not self._wanted):
                    self._condition.wait()
                if self._closed:
                    return
                self._reading, self._wanted = True, False
            try:
                if not self._subscribed:
                    self._subscribe()
                    if not self._subscribed:
                        raise redis.exceptions.ConnectionError("could not subscribe to the reply channel")
                while not self._closed and self._waiters:
                    self._read_one(_SLICE)
                    failures = 0
            except _CONNECTION_ERRORS as error:
                self.last_error = error
                self._drop_connection()
                failures += 1
                with self._lock:
                    self._condition.wait_for(lambda: self._closed, timeout=_BACKOFF.compute(failures))
            finally:
                self._step_down()

    def _read_one(self, timeout: float) -> None:
        """Read one message (waiting at most `timeout`) and hand it on.

        Read with the connection's own `read_response`, not `PubSub.get_message`: that one polls the
        socket, peeks at it and sets its timeout twice per message (7 system calls, not 4).
        """
        connection = self._pubsub.connection
        if connection is None:
            raise redis.exceptions.ConnectionError("the reply channel's connection is closed")
        try:
            # Not disconnected on a timeout: a message read in part is read on next time.
            if _READ_TAKES_TIMEOUT:
                response = connection.read_response(push_request=True, disconnect_on_error=False, timeout=timeout)
            elif connection.can_read(timeout=timeout):
                response = connection.read_response(push_request=True, disconnect_on_error=False)
            else:
                return  # nothing came
        except redis.exceptions.TimeoutError:
            return  # nothing came
        self.last_error = None
        if not isinstance(response, list) or len(response) != 3:
            return
        kind = response[0].decode() if isinstance(response[0], bytes) else response[0]
        if kind == "message":
            record = decode_record(response[2])
            task_id = record.get("task_id") if record else None
            if record is not None and isinstance(task_id, str):
                self.deliver(task_id, record)
        elif kind == "subscribe":
            # (Re)subscribed: records published before this moment are found by one read.
            self._fetch_waited()

    def _fetch_waited(self) -> None:
        with self._lock:
            task_ids = list(self._waiters)
        if not task_ids or self._closed:
            return
        try:
            reads = self._fetch(task_ids)
        except Exception as error:  # the client is closing
            self.last_error = error
            return
        reads.add_done_callback(lambda done: self._found(task_ids, done))

    def _found(self, task_ids: list[str], done: concurrent.futures.Future[list[Record | None]]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # each waiter's own bound still ends its wait with a read of its own
        for task_id, record in zip(task_ids, done.result(), strict=True):
            if record is not None:
                self.deliver(task_id, record)

    def deliver(self, task_id: str, record: Record) -> None:
        """Hand a record to the call's waiters (any thread); a non-final one is kept as progress."""
        if task_id not in self._waiters or not self._check.accepts(task_id, record):
            return
        if record.get("status") not in READY_STATES:
            self._latest[task_id] = record
            return
        with self._lock:
            futures = self._waiters.pop(task_id, ())
        self._latest.pop(task_id, None)
        for future in futures:
            try:  # noqa: SIM105 - once per call: contextlib.suppress is an object and two Python calls
                future.set_result(record)
            except concurrent.futures.InvalidStateError:
                pass  # a waiter whose bound ran out cancelled it, or another path answered it
        if futures:
            self._answered(task_id)

    def _drop_connection(self) -> None:
        # The next read connects again; redis-py's PubSub then subscribes again by itself.
        self._subscribed = False
        if self._pubsub is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                self._pubsub.reset()

    def _disconnect(self) -> None:
        with contextlib.suppress(*_CONNECTION_ERRORS):
            if self._pubsub is not None:
                self._pubsub.close()
            if self._client is not None:
                self._client.close()
                self._client.connection_pool.disconnect()


def _as_read(response: Any) -> Any:
    return response


def decode_record(raw: bytes | str) -> Record | None:
    """A published or stored record as a dict, or None for anything that is not one."""
    try:
        # pydantic-core's parser (no Python frames; 0.5 against 2.0 µs, and less cold code after the
        # caller slept); JSON it refuses that `json` reads (a lone surrogate escape, a BOM, another
        # UTF) is read by `json`, so both give the same value for every record. So is a record with a
        # \u escape: pydantic-core 2.18.1 (pydantic 2.7's, the floor) reads "caf\u00e9" as "cafÃ©".
        escaped = b"\\u" in raw if isinstance(raw, bytes) else "\\u" in raw
        value = json.loads(raw) if escaped else from_json(raw)
    except ValueError:
        try:
            value = json.loads(raw)
        except ValueError:
            return None  # not a Celery record; ignore rather than crash the reader
    return value if isinstance(value, dict) else None
