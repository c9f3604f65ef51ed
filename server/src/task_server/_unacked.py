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
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis.exceptions

from ._pipelined import PendingReply, PipelinedConnection

logger = logging.getLogger(__name__)

# KEYS: unacked index, unacked hash. ARGV: delivery time, delivery tag, [message, exchange, routing key].
_REMEMBER = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
"""
# KEYS: unacked index, unacked hash. ARGV: delivery tag.
_FORGET = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
"""


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
        self._lock = threading.Lock()  # the hub thread writes; a close may come from another

    def remember(self, delivery_tag: str, record: str) -> None:
        """Add a delivered message (its `[message, exchange, routing key]` JSON)."""
        self._send("EVAL", _REMEMBER, 2, *self._keys, time.time(), delivery_tag, record)

    def forget(self, delivery_tag: str) -> None:
        """Remove an acknowledged message."""
        self._send("EVAL", _FORGET, 2, *self._keys, delivery_tag)

    def settle(self) -> None:
        """Read every reply still due, so that Redis has run each command sent so far."""
        with self._lock:
            self._read_replies()

    def close(self) -> None:
        with self._lock:
            try:
                self._read_replies()
            finally:
                self._connection.close()

    def _send(self, *command: Any) -> None:
        with self._lock:
            self._read_replies()
            reply = self._connection.send(*command)
            if reply.done:  # the connection failed as it was written: the caller learns it now
                reply()
            self._unread.append(reply)

    def _read_replies(self) -> None:
        unread, self._unread = self._unread, []
        for reply in unread:
            try:
                reply()
            except redis.exceptions.ResponseError as error:
                # Redis refused it (an ACL, a full maxmemory): that message is not in the unacked record,
                # so it will not come back if this worker is lost before it is acknowledged.
                logger.error("the broker refused a write of the unacked-message record: %s", error)
