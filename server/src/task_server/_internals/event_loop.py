"""kombu's event loop (`Hub`) without the registrations that fail on every turn.

On every turn of the worker's event loop kombu's Redis transport adds a reader for each of its
sockets again (an `epoll_ctl` ADD that fails with EEXIST), and Celery's prefork pool removes the
writer of each idle pool process's pipe, never added (a DEL that fails with ENOENT): with two pool
processes, five failing system calls a turn, each an exception raised and caught in Python.
Here both skip only what would change nothing:

- The transport's turn (`quiet_transport_turn`) adds a reader only for a socket the hub does not
  already read with the transport's callback. kombu registers a new or reconnected socket with
  the poller itself (`MultiChannelPoller._register`), so a socket that replaced another under the
  same number is registered all the same.
- `remove_writer` (`quiet_remove_writer`) returns at once for an fd the hub neither reads nor
  writes: the hub registers an fd with its poller only together with such an entry, and
  removing one it does not have only unregisters, and adds back, nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kombu.asynchronous.hub import Hub
from kombu.transport import redis as kombu_redis
from kombu.utils.compat import fileno

RELIED_ON: tuple[tuple[type, str], ...] = (
    (kombu_redis.Transport, "cycle"),
    (kombu_redis.Transport, "on_readable"),
    (kombu_redis.MultiChannelPoller, "fds"),
    (kombu_redis.MultiChannelPoller, "on_poll_start"),
    (Hub, "on_tick"),
    (Hub, "readers"),
    (Hub, "writers"),
    (Hub, "consolidate"),
)


def quiet_transport_turn(transport: Any, loop: Any, register: Callable[[], None]) -> None:
    """Run `register` (kombu's `register_with_event_loop` of `transport` with `loop`), then replace the
    turn callback it added with one that adds only the readers the hub lacks (see the module doc).
    If kombu added no such callback, or several, its own stay."""
    before = set(loop.on_tick)
    register()
    added = [callback for callback in loop.on_tick if callback not in before]
    if len(added) != 1:
        return
    cycle = transport.cycle
    on_readable = transport.on_readable

    def on_poll_start() -> None:
        cycle.on_poll_start()
        readers = loop.readers
        for fd in cycle.fds:
            if readers.get(fd) != (on_readable, (fd,)):
                loop.add_reader(fd, on_readable, fd)

    loop.on_tick.discard(added[0])
    loop.on_tick.add(on_poll_start)


def quiet_remove_writer(hub: Any) -> None:
    """Have `hub.remove_writer` skip an fd the hub neither reads nor writes (see the module doc)."""
    remove_writer = hub.remove_writer
    if getattr(remove_writer, "quiet", False):
        return

    def guarded(fd: Any) -> None:
        try:
            number = fileno(fd)  # type: ignore[no-untyped-call]
        except (OSError, ValueError, AttributeError):
            number = None  # the hub's own removal says what to make of it
        registered = number in hub.writers or number in hub.readers or number in hub.consolidate
        if number is not None and not registered:
            return
        remove_writer(fd)

    guarded.quiet = True  # type: ignore[attr-defined]
    hub.remove_writer = guarded
