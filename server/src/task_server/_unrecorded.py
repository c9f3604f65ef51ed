"""Messages the worker holds that Redis may not know about when the broker connection is lost.

A message leaves its queue with the pop (BRPOP, or the batch pop of `_batch_pop`) and is recorded
in kombu's unacked hash only when it is delivered, by a second command that is not waited for
(`_unacked`). When Redis crashes, the messages popped and not yet started can be in neither place;
Celery drops them from memory when the connection is lost, expecting the broker to redeliver,
and kombu's restore at channel close fails with Redis gone. A `map` lost 1 to 3 of its 200
messages this way when Redis was killed and restarted (with `appendfsync always`).

They are kept here, in the worker's memory, and requeued as soon as a channel works again, before
it pops anything: each in one transaction that also removes its unacked entry, if Redis has one,
so that the visibility sweep never requeues it a second time. Messages already started are not
kept: they finish and store their result; their acknowledgement fails and their unacked entry (if
any) brings them back after the visibility timeout, to find the call finished.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)


class Kept(NamedTuple):
    tag: str | None  # the delivery tag of its unacked entry, None if it never had one
    key: str  # the list it goes back to
    item: str  # its raw envelope


_lock = threading.Lock()
_kept: collections.deque[Kept] = collections.deque()


def keep(tag: str | None, key: str, item: str) -> None:
    """Keep a message until a working channel requeues it on list `key`."""
    with _lock:
        _kept.append(Kept(tag, key, item))


def pending() -> bool:
    return bool(_kept)


def requeue(client: Any, index_key: str, hash_key: str) -> None:
    """Requeue every kept message through `client` (redis-py); all stay kept if Redis fails."""
    with _lock:
        if not _kept:
            return
        kept = list(_kept)
        pipe = client.pipeline(transaction=True)  # all or none: never requeued twice
        for entry in kept:
            if entry.tag is not None:
                pipe.zrem(index_key, entry.tag)
                pipe.hdel(hash_key, entry.tag)
            pipe.rpush(entry.key, entry.item)  # the consuming end, as kombu restores unacked messages
        pipe.execute()
        _kept.clear()
    logger.warning("requeued %d message(s) held when the broker connection was lost", len(kept))
