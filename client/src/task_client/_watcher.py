"""Result records from Celery's Redis result backend, delivered by publish/subscribe.

One background thread runs an event loop that owns one pub/sub connection and the reads of the
backend; every waiting call, sync or async, shares them. Records reach a call two ways:

- on the client's reply channel (`reply_channel`), subscribed once: a call this client publishes
  names it in `reply_to`, and the worker publishes the call's records there too
  (`task_contracts.wire.REPLY_CHANNEL_PREFIX`). Such a watch is registered before the publish and
  costs no command at all; it does not even wake this thread: the reply channel has a connection
  of its own, read by a waiting sync caller itself or by a thread of its own (`_replies`).
- on the task's own channel, for any other watch (a handle re-attached by id, a call published
  before its watch): it subscribes and, once Redis has confirmed, reads the stored record once. A
  record stored before the subscription is found by that read, one stored after is published to us.

A reply-channel watch still unanswered after `REPLY_FALLBACK` seconds also subscribes to its task's
channel: a worker older than the reply channel, or a record published while the connection was
down, is then found as above. No polling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import uuid
from collections.abc import Coroutine, Iterable
from typing import Any

import redis.asyncio
import redis.asyncio.sentinel
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff

from task_contracts import sentinel_address
from task_contracts.wire import REPLY_CHANNEL_PREFIX, RESULT_KEY_PREFIX

from ._errors import ClientClosed
from ._integrity import RecordCheck
from ._pools import AsyncBoundedPool, AsyncBoundedSentinelPool
from ._replies import ReplyReader, decode_record
from ._settings import ClientSettings

READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
Record = dict[str, Any]

#: Seconds before a reply-channel watch also subscribes to its task's channel (see above).
REPLY_FALLBACK = 0.5

_CLOSE_BOUND = 2.0  # seconds for each step of closing; a frozen server must not hang close()

# What a command on a lost connection can raise. redis-py also raises AttributeError when a
# command is sent on a connection that the reader is tearing down at the same moment.
_CONNECTION_ERRORS = (redis.exceptions.RedisError, OSError, AttributeError)


# Retry a lost connection until it is back (or the client closes): 50 ms growing to 1 s, jittered.
# It holds no state between calls, so one instance serves every retry of the loop thread.
_UNTIL_BACK = Retry(EqualJitterBackoff(cap=1.0, base=0.05), retries=-1, supported_errors=_CONNECTION_ERRORS)  # type: ignore[arg-type]


class ResultWatcher:
    def __init__(self, settings: ClientSettings, check: RecordCheck | None = None) -> None:
        self._settings = settings
        #: Which records are accepted as a call's (`_integrity`); applied to every record read or received.
        self.check = check or RecordCheck(settings)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # (task id, future or None for a forget, monotonic time of a reply-channel watch or None).
        self._requests: list[tuple[str, concurrent.futures.Future[Record] | None, float | None]] = []
        self._flush_scheduled = False
        self._fallback_armed = False  # a timer will flush reply-channel watches within REPLY_FALLBACK
        self._closed = False
        # Loop-thread state below.
        self._waiters: dict[str, set[concurrent.futures.Future[Record]]] = {}
        # Watched ids with no subscription of their own yet, and since when (reply-channel watches).
        self._unsubscribed: dict[str, float] = {}
        # Latest non-final record (e.g. PROGRESS) per watched id; read from any thread.
        self._latest: dict[str, Record] = {}
        self._to_fetch: set[str] = set()
        # Reads asked for in one loop turn, answered by one MGET (thousands of timed-out waits at once
        # would otherwise each take a pooled connection).
        self._reads: list[tuple[str, concurrent.futures.Future[Record | None]]] = []
        self._to_unsubscribe: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._commands: asyncio.Lock | None = None  # one pub/sub command at a time
        self._redis: redis.asyncio.Redis | None = None
        self._sentinel: redis.asyncio.sentinel.Sentinel | None = None
        self._pubsub: Any = None
        #: The channel named in `reply_to` of every call this client publishes.
        self.reply_channel = f"{REPLY_CHANNEL_PREFIX}{uuid.uuid4().hex}"
        # Read apart from this thread's connection (see above).
        self.replies = ReplyReader(
            settings, self.reply_channel, self.check, self.fetch_many, self._latest, self._answered_elsewhere
        )
        # This thread's pub/sub connection is subscribed to it even with no task channel to watch, so
        # that it always has a subscription to read; nothing is published on it.
        self._quiet_channel = f"{self.reply_channel}.quiet"
        self._broken = False  # the reader lost its connection: resubscribe before reading on
        self._fallback_timer: asyncio.TimerHandle | None = None
        self.last_error: BaseException | None = None

    # -- any thread ------------------------------------------------------------
    def watch(self, task_id: str, *, replied: bool = False, waited: bool = False) -> concurrent.futures.Future[Record]:
        """A future resolved with the task's record once it is ready (SUCCESS, FAILURE, REVOKED).

        `replied`: the call is not published yet and will name `reply_channel` in its `reply_to`
        (otherwise its task's channel is subscribed now too).
        `waited`: the caller will wait for it with a `Wait` step, which reads the reply channel itself
        (a sync caller) or asks for its reader (async); otherwise its reader serves it at once.
        """
        (future,) = self.watch_many([task_id], replied=replied, waited=waited)
        return future

    def watch_many(
        self, task_ids: Iterable[str], *, replied: bool = False, waited: bool = False
    ) -> list[concurrent.futures.Future[Record]]:
        since = time.monotonic() if replied else None
        task_ids = list(task_ids)
        futures: list[concurrent.futures.Future[Record]] = list(self.replies.watch(task_ids, serve=not waited))
        with self._lock:
            for task_id, future in zip(task_ids, futures, strict=True):
                self._requests.append((task_id, future, since))
            # Hot path: a reply-channel watch needs nothing of the loop thread until a record
            # comes, so it is not woken for it, except to arm the fallback timer.
            wake = not replied or not self._fallback_armed
            self._fallback_armed = self._fallback_armed or replied
        if wake:
            self._schedule_flush()
        return futures

    def make_spare(self) -> None:
        """Make what the next watch needs now, while a call waits (`ReplyReader.make_spare`)."""
        self.replies.make_spare()

    def forget(self, task_id: str, future: concurrent.futures.Future[Record]) -> None:
        """Stop waiting with `future` (after a timeout); unsubscribes when no one else waits."""
        future.cancel()
        self.replies.forget(task_id, future)
        self._request(task_id, None)

    def fetch(self, task_id: str) -> concurrent.futures.Future[Record | None]:
        """The record stored now, or None while the task is pending."""
        future: concurrent.futures.Future[Record | None] = concurrent.futures.Future()
        self._running_loop().call_soon_threadsafe(self._queue_read, task_id, future)
        return future

    def fetch_many(self, task_ids: list[str]) -> concurrent.futures.Future[list[Record | None]]:
        """The records stored now, in order (None for each pending task), in one round trip."""
        loop = self._running_loop()  # first: a closed client must leave no coroutine unawaited
        return asyncio.run_coroutine_threadsafe(self._get_many(task_ids), loop)

    def evaluate(self, script: str, keys: list[str], args: list[Any]) -> concurrent.futures.Future[Any]:
        """Run a Lua script on the result backend (one atomic step); its reply."""
        loop = self._running_loop()
        return asyncio.run_coroutine_threadsafe(self._evaluate(script, keys, args), loop)

    def evaluate_many(self, script: str, calls: list[tuple[list[str], list[Any]]]) -> concurrent.futures.Future[Any]:
        """Run a Lua script once per `(keys, args)` on the result backend, pipelined; the replies."""
        loop = self._running_loop()
        return asyncio.run_coroutine_threadsafe(self._evaluate_many(script, calls), loop)

    def latest(self, task_id: str) -> Record | None:
        """The latest non-final record (PROGRESS, STARTED, ...) seen for a watched id, else None."""
        return self._latest.get(task_id)

    def is_watching(self, task_id: str) -> bool:
        """True while some caller waits on this id (its records are then remembered)."""
        # An answered reply-channel watch may wait in `_waiters` for the fallback timer to drop it.
        return self.replies.is_watching(task_id) or (task_id in self._waiters and task_id not in self._unsubscribed)

    def is_disconnected(self) -> bool:
        return self.last_error is not None or self.replies.last_error is not None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError):  # each step inside is bounded too
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=_CLOSE_BOUND * 3)
        self.replies.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_CLOSE_BOUND)

    def _request(self, task_id: str, future: concurrent.futures.Future[Record] | None) -> None:
        with self._lock:
            self._requests.append((task_id, future, None))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        loop = self._running_loop()
        with self._lock:
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        loop.call_soon_threadsafe(self._flush)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                started = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._loop, started), name="task-client-results", daemon=True
                )
                self._thread.start()
                started.wait()
                start_replies = True
            else:
                start_replies = False
            loop = self._loop
        if start_replies:
            # From the first use, as the first call may be a handle's wait: some records (a
            # `DuplicateTaskId` refusal) are published on the reply channel only.
            self.replies.start()
        return loop

    def _run(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._redis = self._connect()
        self._pubsub = self._redis.pubsub()
        self._commands = asyncio.Lock()
        self._reader = loop.create_task(self._read_forever())
        loop.call_soon(started.set)
        loop.run_forever()
        # One more turn lets closed transports finish (connection_lost) before the loop goes.
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    def _connect(self) -> redis.asyncio.Redis:
        settings = self._settings
        url = settings.urls.result_backend
        bounds = {"socket_connect_timeout": settings.connect_timeout, "socket_timeout": settings.socket_timeout}
        # Commands wait up to `pool_timeout` for a free connection rather than fail at the ceiling.
        # The subscription holds one connection for good: it is not counted in `max_connections`.
        pool_size: dict[str, Any] = {"max_connections": settings.max_connections + 1, "timeout": settings.pool_timeout}
        if not url.startswith("sentinel:"):
            return redis.asyncio.Redis.from_pool(AsyncBoundedPool.from_url(url, **bounds, **pool_size))
        # The master is whichever Redis the sentinels name now: its pool asks them again after
        # a failover, so the pub/sub connection and every read follow the promoted replica.
        address = sentinel_address(url)
        self._sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            address.sentinels, sentinel_kwargs=bounds, **bounds
        )
        master: redis.asyncio.Redis = self._sentinel.master_for(
            address.master_name,
            connection_pool_class=AsyncBoundedSentinelPool,
            db=address.db,
            username=address.username,
            password=address.password,
            **pool_size,
        )
        return master

    # -- loop thread -----------------------------------------------------------
    def _flush(self) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
            self._flush_scheduled = False
            armed = self._fallback_armed
        new_channels = []
        for task_id, future, since in requests:
            if future is not None and future.done():
                continue  # answered on the reply channel before this thread ever saw it
            waiters = self._waiters.get(task_id)
            if future is None:  # a forget
                if waiters is not None:
                    waiters.difference_update([f for f in waiters if f.done()])
                    if not waiters:
                        del self._waiters[task_id]
                        self._latest.pop(task_id, None)
                        self._stop_watching(task_id)
                continue
            if waiters is None:
                self._waiters[task_id] = {future}
                self._to_unsubscribe.discard(task_id)
                if since is None:
                    new_channels.append(RESULT_KEY_PREFIX + task_id)
                else:
                    self._unsubscribed[task_id] = since
            else:
                waiters.add(future)
                if since is None and self._unsubscribed.pop(task_id, None) is not None:
                    new_channels.append(RESULT_KEY_PREFIX + task_id)
        if new_channels:
            self._spawn(self._subscribe(new_channels))
        if (armed or self._unsubscribed) and self._fallback_timer is None:
            self._arm_fallback()

    def _arm_fallback(self) -> None:
        # While armed, reply-channel watches do not wake this thread: the timer flushes them.
        with self._lock:
            self._fallback_armed = True
        self._fallback_timer = asyncio.get_running_loop().call_later(REPLY_FALLBACK / 2, self._fall_back)

    def _fall_back(self) -> None:
        """Subscribe reply-channel watches that waited `REPLY_FALLBACK` to their tasks' own channels."""
        self._fallback_timer = None
        with self._lock:
            self._fallback_armed = False
        self._flush()
        deadline = time.monotonic() - REPLY_FALLBACK
        due = [task_id for task_id, since in self._unsubscribed.items() if since <= deadline]
        for task_id in due:
            del self._unsubscribed[task_id]
        due = [task_id for task_id in due if self._still_waited(task_id)]
        if due:
            self._spawn(self._subscribe([RESULT_KEY_PREFIX + task_id for task_id in due]))
        if self._unsubscribed and self._fallback_timer is None:
            self._arm_fallback()

    def _answered_elsewhere(self, task_id: str) -> None:
        """A call was answered on the reply channel (any thread): drop what this thread holds for it.

        Not for a reply-channel watch without a channel of its own yet (most calls): that leaves
        nothing to undo, and the fallback timer drops its done future when it comes due, instead of
        this thread being woken once per call (measured: 1 call in 8 with 32 threads calling).
        """
        loop = self._loop
        if task_id in self._waiters and task_id not in self._unsubscribed and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(self._drop_answered, task_id)

    def _drop_answered(self, task_id: str) -> None:
        waiters = self._waiters.get(task_id)
        if waiters is None:
            return
        waiters.difference_update([f for f in waiters if f.done()])
        if not waiters:
            del self._waiters[task_id]
            self._latest.pop(task_id, None)
            self._stop_watching(task_id)

    def _still_waited(self, task_id: str) -> bool:
        # Calls answered on the reply channel (`_replies`) leave done futures here: drop them.
        waiters = self._waiters.get(task_id)
        if waiters is not None:
            waiters.difference_update([f for f in waiters if f.done()])
            if not waiters:
                del self._waiters[task_id]
                self._latest.pop(task_id, None)
        return waiters is not None and bool(waiters)

    def _stop_watching(self, task_id: str) -> None:
        # Only a task channel of its own is unsubscribed; a reply-channel watch has none.
        if self._unsubscribed.pop(task_id, None) is not None:
            return
        if not self._to_unsubscribe:
            asyncio.get_running_loop().call_soon(self._unsubscribe_later)
        self._to_unsubscribe.add(task_id)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # The loop keeps only weak references to tasks; hold them until done.
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _subscribe(self, channels: list[str]) -> None:
        assert self._commands is not None
        commands = self._commands

        async def subscribe() -> None:
            waited = [channel for channel in channels if channel[len(RESULT_KEY_PREFIX) :] in self._waiters]
            if waited:
                async with commands:
                    await self._pubsub.subscribe(*waited)

        # The reader resubscribes everything when it sees the connection broken; if the
        # connection is whole again by then, it will not, so these channels retry on their own.
        await _UNTIL_BACK.call_with_retry(subscribe, self._note_error)

    async def _note_error(self, error: Exception) -> None:
        self.last_error = error

    def _unsubscribe_later(self) -> None:
        channels = [RESULT_KEY_PREFIX + task_id for task_id in self._to_unsubscribe]
        self._to_unsubscribe.clear()
        if channels:
            self._spawn(self._unsubscribe(channels))

    async def _unsubscribe(self, channels: list[str]) -> None:
        assert self._commands is not None
        try:
            async with self._commands:
                await self._pubsub.unsubscribe(*channels)
        except _CONNECTION_ERRORS as error:
            self.last_error = error

    async def _read_forever(self) -> None:
        while True:
            message = await _UNTIL_BACK.call_with_retry(self._next_message, self._connection_lost)
            self.last_error = None
            if message is not None:
                self._on_message(message)

    async def _next_message(self) -> dict[str, Any] | None:
        if self._broken or self._pubsub.connection is None:
            await self._resubscribe_all()
            self._broken = False
        message: dict[str, Any] | None = await self._pubsub.get_message(timeout=None)
        return message

    async def _connection_lost(self, error: Exception) -> None:
        self.last_error = error
        self._broken = True

    async def _resubscribe_all(self) -> None:
        assert self._commands is not None
        channels = [RESULT_KEY_PREFIX + task_id for task_id in self._waiters if task_id not in self._unsubscribed]
        async with self._commands:
            await self._pubsub.subscribe(self._quiet_channel, *channels)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if channel == self._quiet_channel:
            return
        if not channel.startswith(RESULT_KEY_PREFIX):
            return
        task_id = channel[len(RESULT_KEY_PREFIX) :]
        if message["type"] == "subscribe":
            # Subscribed: a record stored before this moment is found by one read.
            self._fetch_soon([task_id])
        elif message["type"] == "message":
            self._deliver(task_id, decode_record(message["data"]))

    def _fetch_soon(self, task_ids: list[str]) -> None:
        waited = [task_id for task_id in task_ids if task_id in self._waiters]
        if waited:
            if not self._to_fetch:
                asyncio.get_running_loop().call_soon(self._fetch_later)
            self._to_fetch.update(waited)

    def _fetch_later(self) -> None:
        task_ids = [task_id for task_id in self._to_fetch if task_id in self._waiters]
        self._to_fetch.clear()
        if task_ids:
            self._spawn(self._fetch_batch(task_ids))

    async def _fetch_batch(self, task_ids: list[str]) -> None:
        assert self._redis is not None
        store = self._redis

        async def read() -> list[Any]:
            nonlocal task_ids
            task_ids = [task_id for task_id in task_ids if task_id in self._waiters]
            if not task_ids:
                return []
            values: list[Any] = await store.mget([RESULT_KEY_PREFIX + task_id for task_id in task_ids])
            return values

        # After a reconnect the first command may meet a dead pooled connection; a record stored
        # while we were away would never be published again, so read until it works.
        values = await _UNTIL_BACK.call_with_retry(read, self._note_error)
        for task_id, value in zip(task_ids, values, strict=True):
            if value is not None:
                self._deliver(task_id, decode_record(value), published=False)

    def _deliver(self, task_id: str, record: Record | None, *, published: bool = True) -> None:
        if record is None or not self.check.accepts(task_id, record):
            return
        if record.get("status") not in READY_STATES:
            # A read may return an older record than one already published; never go back.
            if task_id in self._waiters and (published or task_id not in self._latest):
                self._latest[task_id] = record
            return
        self._latest.pop(task_id, None)
        self.replies.deliver(task_id, record)  # a call waiting on the reply channel too (a slow one)
        waiters = self._waiters.pop(task_id, None)
        if waiters is None:
            return
        # The reply channel's reader may have answered some of them meanwhile.
        _settle([future for future in waiters if not future.done()], record)
        self._stop_watching(task_id)

    def _queue_read(self, task_id: str, future: concurrent.futures.Future[Record | None]) -> None:
        if not self._reads:
            asyncio.get_running_loop().call_soon(self._read_queued)
        self._reads.append((task_id, future))

    def _read_queued(self) -> None:
        reads, self._reads = self._reads, []
        self._spawn(self._read(reads))

    async def _read(self, reads: list[tuple[str, concurrent.futures.Future[Record | None]]]) -> None:
        try:
            records = await self._get_many([task_id for task_id, _ in reads])
        except asyncio.CancelledError:
            _settle([future for _, future in reads], error=ClientClosed("the client was closed during a read"))
            raise
        except Exception as error:
            _settle([future for _, future in reads], error=error)
        else:
            for (_, future), record in zip(reads, records, strict=True):
                _settle([future], record)

    async def _get_many(self, task_ids: list[str]) -> list[Record | None]:
        assert self._redis is not None
        values = await self._redis.mget([RESULT_KEY_PREFIX + task_id for task_id in task_ids])
        records = [None if value is None else decode_record(value) for value in values]
        accepts = self.check.accepts
        return [
            None if record is None or not accepts(task_id, record) else record
            for task_id, record in zip(task_ids, records, strict=True)
        ]

    async def _evaluate(self, script: str, keys: list[str], args: list[Any]) -> Any:
        assert self._redis is not None
        return await self._redis.eval(script, len(keys), *keys, *args)

    async def _evaluate_many(self, script: str, calls: list[tuple[list[str], list[Any]]]) -> Any:
        assert self._redis is not None
        pipeline = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            pipeline.eval(script, len(keys), *keys, *args)
        return await pipeline.execute()

    async def _shutdown(self) -> None:
        # Waiting callers learn first, so nothing below (a task slow to cancel, a frozen server) holds them.
        if self._fallback_timer is not None:
            self._fallback_timer.cancel()
        with self._lock:
            requests, self._requests = self._requests, []
        _settle(
            [future for _, future, _ in requests if future is not None],
            error=ClientClosed("the client was closed while the call was waiting"),
        )
        for waiters in self._waiters.values():
            for future in waiters:
                _settle([future], error=ClientClosed("the client was closed while the call was waiting"))
        for _, read in self._reads:
            _settle([read], error=ClientClosed("the client was closed during a read"))
        self._waiters.clear()
        self._latest.clear()
        self._reads.clear()
        pending = [*self._background, *([self._reader] if self._reader else [])]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_CLOSE_BOUND)
        # Each close is bounded and independent: the server may be frozen or gone, and a connection
        # left half-closed would leak its socket.
        closers = [self._pubsub.aclose()]
        if self._redis is not None:
            closers.append(self._redis.aclose())
            closers.append(self._redis.connection_pool.disconnect(inuse_connections=True))
        if self._sentinel is not None:
            closers.extend(sentinel.aclose() for sentinel in self._sentinel.sentinels)
        for closer in closers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closer, _CLOSE_BOUND)


def _settle(
    futures: list[concurrent.futures.Future[Any]], value: Any = None, *, error: Exception | None = None
) -> None:
    for future in futures:
        # A waiter whose bound ran out may have cancelled its future meanwhile; then nobody listens.
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)
