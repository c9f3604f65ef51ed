"""kombu's crash-recovery bookkeeping in Redis, read as data anyone with write access may have spoiled.

kombu restores a lost worker's messages from three keys: the unacked hash (delivery tag ->
`[message, exchange, routing key]` JSON), the unacked index (a sorted set of delivery tags by
delivery time) and a lock (`unacked_mutex`) that lets one worker sweep at a time. kombu trusts
them: one entry that is not such a triple (`HSET unacked g7 '[1]'`) raised `ValueError` in every
sweep of every worker ("Error in timer", every few seconds), so no lost message came back again;
a key of the wrong type did the same, and a lock written without an expiry held the sweep forever.

Here an entry that cannot be restored is removed from the index and the hash and reported (log
line and the `task_server_bookkeeping_malformed` metric), a key of the wrong type or a lock
without an expiry is deleted and reported, and the sweep goes on with the real entries.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery.utils.dispatch import Signal

logger = logging.getLogger(__name__)

#: Sent for each malformed piece of bookkeeping removed (`what`: which key or entry, `detail`: why).
bookkeeping_malformed = Signal(name="bookkeeping_malformed", providing_args={"what", "detail"})

_SHOWN = 120  # characters of a malformed value shown in the log


def unacked_entry(raw: bytes | str) -> tuple[dict[str, Any], str, str] | None:
    """The `(message, exchange, routing key)` of an unacked-hash value, or None if it is not one."""
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not (isinstance(decoded, list) and len(decoded) == 3):
        return None
    message, exchange, routing_key = decoded
    if not (isinstance(message, dict) and isinstance(exchange, str) and isinstance(routing_key, str)):
        return None
    if not (isinstance(message.get("properties", {}), dict) and isinstance(message.get("headers", {}), dict)):
        return None
    return message, exchange, routing_key


def report(what: str, detail: str, raw: Any = None) -> None:
    shown = "" if raw is None else f": {raw!r:.{_SHOWN}}"
    logger.error("removed malformed crash-recovery bookkeeping, %s (%s)%s", what, detail, shown)
    bookkeeping_malformed.send(sender=None, what=what, detail=detail)


def repair_keys(client: Any, index_key: str, hash_key: str, mutex_key: str) -> None:
    """Delete (and report) a bookkeeping key of the wrong type, or a sweep lock that never expires."""
    pipe = client.pipeline(transaction=False)
    pipe.type(index_key).type(hash_key).type(mutex_key).ttl(mutex_key)
    index_type, hash_type, mutex_type, mutex_ttl = (_text(value) for value in pipe.execute())
    for key, found, wanted in (
        (index_key, index_type, "zset"),
        (hash_key, hash_type, "hash"),
        (mutex_key, mutex_type, "string"),
    ):
        if found not in ("none", wanted):
            client.delete(key)
            report(f"key {key!r}", f"a {found}, not a {wanted}")
    if mutex_type == "string" and mutex_ttl == "-1":
        client.delete(mutex_key)
        report(f"key {mutex_key!r}", "a sweep lock without expiry, which would stop every sweep")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
