"""kombu's record of delivered, unacknowledged messages, written without waiting for Redis.

kombu keeps every message it delivers in the unacked hash, and its delivery time in the unacked
index (a sorted set), until it is acknowledged; a message whose worker is lost comes back from
there after the visibility timeout. kombu writes each entry with a MULTI/EXEC pipeline and waits for
the reply before the task can start, and removes it the same way after the task. Both waits sat on
the worker's main thread: a Redis round trip per delivery on the path of every call (~130 µs in a
timeline of `client.add(4, 7)`), and another per acknowledgement.

Here the same two commands go as one atomic script on a connection of their own
(`_pipelined`), and the main thread goes on as soon as the command is written to the socket. Redis
runs a connection's commands in order, and the replies are read (and a refused entry logged) before
the next command is sent, before anything else reads the index (a requeue, a channel close) and
when the channel closes. The entry reaches Redis before the task is handed on, as before; only the
wait for Redis's "OK" is gone.

Each entry is also held back until the next write on the same connection (`flush_held`): a call
served on the main process's threads or event loop asks for its admission (`_preadmission`) a few
steps later, and when broker and result backend are one Redis both go in one write, one wake-up
of Redis instead of two on the path of every call (measured on `client.add(4, 7)`: the worker's
writes per call 5.7 -> 4.7). Every path that hands a message on, acknowledges it, reads from
Redis or waits for the next message flushes first; a failed write is raised there as the
remember's own failure was, and the message is kept (`_unrecorded`) as before. Likewise the
removal of a message acknowledged on the hub's thread (a call on the event loop) waits for the next
write, under a backlog the next message's, and at the latest for the hub's next BRPOP (worker
writes per message of `map(chunk_size=1)`: 3.3 -> 2.4).

When broker and result backend are one Redis, a call whose admission went in one write with its
entry (`send_with_held`) has that entry removed by the script that stores its SUCCESS record
(`RemovalAtStore`), atomically with the record, instead of by a script of its own at the late ack:
one write and one wake-up of Redis fewer per call. The ack then skips that removal only; kombu's
and Celery's in-memory bookkeeping is unchanged. The entry is gone only once the record is there,
as before: a worker lost before the store has its message redelivered, one lost after it leaves
nothing to redeliver. Any other outcome (a retry, a failure, a refused or failed store) keeps the
removal at the ack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions

from task_contracts.wire import TAKING_KEY

from ._pipelined import PendingReply, PipelinedConnection
from ._recorded_pop import no_op_write

logger = logging.getLogger(__name__)

# KEYS: unacked index, unacked hash, taking set. ARGV: delivery time, delivery tag, [message,
# exchange, routing key], the taking member of the BRPOP that popped it ("" if none).
# The message has left its queue already: `no_op_write` is a first write after which Redis lets the
# record through even if it is full by now (`_recorded_pop`).
# The taking member goes in the same step as the entry: a cancel sees the message in one or the other.
_REMEMBER = (
    no_op_write(3)
    + """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.pcall('ZREM', KEYS[3], ARGV[4]) end
"""
)
# KEYS: unacked index, unacked hash. ARGV: delivery tag.
_FORGET = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
"""

# KEYS: taking set. ARGV: a member, the oldest time kept.
_TAKEN = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
"""
#: Key of Celery's request dict (so an attribute of the task's request on the thread): the
#: `RemovalAtStore` of the delivery's unacked entry.
REMOVAL_KEY = "task_sdk_unacked_removal"

#: Delivery tags removed by their record's store and awaiting their ack, at most (`removed_at_store`).
_REMOVED_KEPT = 10_000

#: Seconds a member of the taking set is kept (a lost worker's: cancels ignore it after a few seconds).
_TAKING_KEPT = 60.0


#: Ledgers holding entries not written yet (see the module doc); `flush_held` writes them. A plain
#: set, asked about and changed a few times per call (a WeakSet did each in Python): a ledger leaves
#: it as its held entries are written (`_write`, also on `close`), never dropped with entries held.
_holding: set[UnackedLedger] = set()


def flush_held() -> None:
    """Write every held entry of every ledger now (before a message is handed on); raise what a write meets."""
    if not _holding:  # asked twice per call: mostly nothing is held
        return
    for ledger in list(_holding):
        ledger.flush()


class UnackedLedger:
    """One channel's writes of the unacked index and hash, on a pipelined connection of its pool.

    EVAL rather than EVALSHA: a Redis restarted meanwhile would refuse an unknown SHA, and that
    refusal would only be read after the task had started.
    """

    def __init__(self, pool: Any, index_key: str, hash_key: str) -> None:
        self.pool = pool
        self._keys = (index_key, hash_key)
        self._connection = PipelinedConnection(pool)
        self._unread: list[PendingReply] = []
        # Entries not written yet, each with what to do if its write fails (the message is then recorded nowhere).
        self._held: list[tuple[tuple[Any, ...], Callable[[], None]]] = []
        # Removals of messages acknowledged on the hub's thread, not written yet (see `forget`).
        self._held_forgets: list[tuple[Any, ...]] = []
        self._hub_thread: int | None = None  # the thread that records deliveries
        self._lock = threading.Lock()  # the hub thread writes; a close may come from another
        self._shares: tuple[Any, bool] | None = None  # the last pool `shares_server` was asked about
        self._removed_at_store: set[str] = set()  # removed by their record's store (`RemovalAtStore`), not acked yet

    @property
    def keys(self) -> tuple[str, str]:
        """The unacked index and hash."""
        return self._keys

    def removed_at_store(self, delivery_tag: str) -> None:
        """The script storing its record removed `delivery_tag`'s entry (`RemovalAtStore`): its ack writes nothing."""
        if len(self._removed_at_store) >= _REMOVED_KEPT:  # acks that never came (a call acknowledged before its store)
            self._removed_at_store.clear()  # an ack then writes its removal again: harmless
        self._removed_at_store.add(delivery_tag)

    def remember(self, delivery_tag: str, record: str, on_unsent: Callable[[], None], taking: str = "") -> None:
        """Add a delivered message (its `[message, exchange, routing key]` JSON), written with the next
        write or `flush`, and remove `taking`, the member its BRPOP left in the taking set. `on_unsent`
        is called if that write fails."""
        command = ("EVAL", _REMEMBER, 3, *self._keys, TAKING_KEY, time.time(), delivery_tag, record, taking)
        with self._lock:
            self._hub_thread = threading.get_ident()
            self._held.append((command, on_unsent))
        _holding.add(self)

    def forget(self, delivery_tag: str) -> None:
        """Remove an acknowledged message.

        Acknowledged on the hub's thread (a call on the event loop, a pool process's result), the
        removal waits for the next write (the next message's entry and admission, under a backlog)
        or, at the latest, the hub's next BRPOP (`flush_all`): one write fewer per message.
        Acknowledged on another thread, it is written at once. Removed already by the script that
        stored its record (`RemovalAtStore`): nothing to write."""
        if self._removed_at_store and delivery_tag in self._removed_at_store:
            self._removed_at_store.discard(delivery_tag)
            return
        command = ("EVAL", _FORGET, 2, *self._keys, delivery_tag)
        if threading.get_ident() == self._hub_thread:
            with self._lock:
                self._held_forgets.append(command)
            return
        self._send(*command)

    def taken(self, taking: str) -> None:
        """Remove `taking`, the member of a BRPOP that delivered no message (an idle wait's end, about
        once a second): written at once, so that no cancel waits for it; and members left by lost
        workers."""
        self._send("EVAL", _TAKEN, 1, TAKING_KEY, taking, time.time() - _TAKING_KEPT)

    def shares_server(self, pool: Any) -> bool:
        """Whether `pool` (the result backend's) reaches the same Redis database as this ledger's."""
        shared = self._shares
        if shared is None or shared[0] is not pool:  # asked for every call: answered once per pool
            shared = self._shares = (pool, _address(pool) == _address(self.pool))
        return shared[1]

    def send_with_held(self, *command: Any) -> PendingReply:
        """Write `command` on this ledger's connection, in one write with the held entries; its reply.

        A failed write is raised (the held messages are kept), as `flush` raises it."""
        with self._lock:
            (reply,) = self._write([command])
        return reply

    def flush(self) -> None:
        """Write the held entries (and any held removal) now; raise the connection error a failed write meets."""
        with self._lock:
            if self._held:
                self._write([])

    def flush_all(self) -> None:
        """Write the held entries and removals now (before the hub waits for the next message)."""
        with self._lock:
            if self._held or self._held_forgets:
                self._write([])

    def settle(self) -> None:
        """Read every reply still due, so that Redis has run each command sent so far."""
        with self._lock:
            if self._held or self._held_forgets:
                self._write([])
            self._read_replies()

    def close(self) -> None:
        with self._lock:
            try:
                if self._held or self._held_forgets:
                    self._write([])
                self._read_replies()
            finally:
                self._connection.close()

    def _send(self, *command: Any) -> None:
        with self._lock:
            self._read_replies()
            (reply,) = self._write([command])
            if reply.done:  # the connection failed as it was written: the caller learns it now
                reply()
            self._unread.append(reply)

    def _write(self, commands: Sequence[tuple[Any, ...]]) -> list[PendingReply]:
        """Write the held removals and entries and `commands` in one write; the replies of `commands`."""
        forgets, self._held_forgets = self._held_forgets, []
        held, self._held = self._held, []
        _holding.discard(self)
        replies = self._connection.send_many([*forgets, *(command for command, _ in held), *commands])
        written = len(forgets) + len(held)
        if replies and replies[0].done:  # the write failed (every reply with it)
            for _, on_unsent in held:  # recorded nowhere: kept for a requeue
                on_unsent()
            if written:
                replies[0]()  # raised, as an entry or removal written at once raised it
            return replies[written:]
        self._unread.extend(replies[:written])
        return replies[written:]

    def _read_replies(self) -> None:
        unread, self._unread = self._unread, []
        for reply in unread:
            try:
                reply()
            except redis.exceptions.ResponseError as error:
                # Redis refused it (an ACL, a full maxmemory): that message is not in the unacked record,
                # so it will not come back if this worker is lost before it is acknowledged.
                logger.error("the broker refused a write of the unacked-message record: %s", error)


class RemovalAtStore:
    """The removal of one delivery's unacked entry, to be done by the script that stores its record.

    Only for an entry known to be in Redis before the call ran: its admission, whose verdict the
    call read before it started, went after it on the same connection (`_admission.ask_early`)."""

    __slots__ = ("_ledger", "delivery_tag", "keys", "task_id")

    def __init__(self, ledger: UnackedLedger, delivery_tag: str, task_id: str) -> None:
        self.keys = ledger.keys  # the unacked index and hash
        self.delivery_tag, self.task_id, self._ledger = delivery_tag, task_id, ledger

    def done(self) -> None:
        """The store script removed the entry: the message's ack writes nothing more."""
        self._ledger.removed_at_store(self.delivery_tag)


def plan_removal_at_store(request: Any, ledger: UnackedLedger) -> None:
    """Have the store of a Celery request's (one delivery's) result remove its unacked entry."""
    request.request_dict[REMOVAL_KEY] = RemovalAtStore(ledger, request.message.delivery_tag, request.id)


def removal_at_store(task_request: Any, task_id: str) -> RemovalAtStore | None:
    """The planned removal of the unacked entry of the call `task_request` ran, if its record is `task_id`'s."""
    removal = getattr(task_request, REMOVAL_KEY, None)
    return removal if isinstance(removal, RemovalAtStore) and removal.task_id == task_id else None


def _address(pool: Any) -> tuple[Any, ...]:
    """Where a redis-py pool's connections go: class, host, port or path, database and user; for a
    Sentinel pool (no host or port of its own) also its master's name and its sentinels' addresses."""
    kwargs = getattr(pool, "connection_kwargs", {})
    keys = ("host", "port", "path", "db", "username", "password")
    manager = getattr(pool, "sentinel_manager", None)
    sentinels = sorted(
        (str(kw.get("host")), str(kw.get("port")))
        for kw in (sentinel.connection_pool.connection_kwargs for sentinel in getattr(manager, "sentinels", ()))
    )
    return (
        getattr(pool, "connection_class", None),
        *(kwargs.get(key) for key in keys),
        getattr(pool, "service_name", None),
        tuple(sentinels),
    )
