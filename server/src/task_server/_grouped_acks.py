"""Late acks of the calls served by threads, sent by the event loop in groups (RabbitMQ).

Celery hands each call's late ack from the thread that ran the call to the event loop, one
callback per ack (`call_soon_ack`), and each callback wrote a `basic.ack` of its own. Here the acks
of a RabbitMQ channel that can group them (`_internals.amqp_acks`) are queued instead, and one
callback on the loop sends all that were queued by the time it runs: in one write, with one
`basic.ack(multiple=True)` for a run covering the oldest deliveries the channel holds. An ack is
still sent after the call's result is stored, on the loop's next turn, as before.

The ack of a call run on the event loop itself (`_inline`) joins the same queue, sent
`LOOP_ACK_DELAY` later rather than at once. The window in which a crash leaves that call unacked
grows by as much: such a crash means one redelivery, which the admission refuses as finished (its
record is stored), as a crash between the store and the ack always did. The acks still queued when
the event loop closes (a warm shutdown; a closing loop runs its ready callbacks, not its timers)
are sent then, before the consumer closes its connection (`Hub.on_close`); those for a connection
lost meanwhile (Celery's loop resets, and so closes, the hub then) are dropped with a log line, as
each ack sent alone is (the broker redelivers their calls).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ._internals.amqp_acks import GroupingChannel

logger = logging.getLogger(__name__)

#: Seconds after which an ack finds its queue's callback still not run and schedules another.
#: kombu's loop runs the callbacks of a turn one after another, and one that raises (its own
#: `ack_log_error` re-raises a BrokenPipeError) drops the others: the queue's among them, it would
#: never be sent, nor any ack queued after it. A second callback finds nothing left to send.
RESCHEDULE_AFTER = 1.0

#: Seconds an on-loop call's ack waits (RabbitMQ). Sent at once, its `basic.ack` woke the broker
#: node just as Redis published the call's record and the caller had to wake: on 2 cores, one
#: runnable process too many on the round trip's critical path (A/B in docs/performance.md).
LOOP_ACK_DELAY = 0.0003


class AckQueue:
    """Acks queued by threads for the event loop, sent together by one callback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[tuple[Any, tuple[type[BaseException], ...]]] = []
        self._scheduled = False
        self._due = 0.0  # when the scheduled callback is to run (monotonic)
        self._flushed_by: Any = None  # the hub whose closing sends what is still queued

    def add(self, hub: Any, message: Any, errors: tuple[type[BaseException], ...], delay: float = 0.0) -> None:
        """Queue the ack of `message` (kombu's); `errors`, the connection errors it may meet. Sent
        on the loop's next turn, or `delay` seconds from now (only from the loop's own thread)."""
        with self._lock:
            self._waiting.append((message, errors))
            now = time.monotonic()
            due = now + delay
            if self._scheduled and self._due <= due and now - self._due < RESCHEDULE_AFTER:
                return
            self._scheduled, self._due = True, due
        if delay:
            if hub is not self._flushed_by:
                hub.on_close.add(self.send_at_close)
                self._flushed_by = hub
            hub.call_later(delay, self.send)
        else:
            hub.call_soon(self.send)

    def send_at_close(self, hub: Any) -> None:
        """Send what is still queued as the event loop closes (its timers will not run again): a
        warm shutdown, or a reset after the connection was lost (Celery's loop), where nothing may
        raise (it would cut the reset short) and the acks, void with their connection, are dropped."""
        try:
            self.send()
        except Exception as error:
            logger.warning("acks dropped as the event loop closed (%r); the broker redelivers their calls", error)

    def send(self) -> None:
        """Send every ack queued so far, grouped by channel (on the event loop)."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
            self._scheduled = False
        by_channel: dict[Any, list[tuple[Any, tuple[type[BaseException], ...]]]] = {}
        for message, errors in waiting:
            by_channel.setdefault(message.channel, []).append((message, errors))
        for channel, acks in by_channel.items():
            errors = acks[0][1]
            try:
                with channel.acks_grouped():
                    for message, message_errors in acks:
                        message.ack_log_error(logger, message_errors)  # noted, sent as the group ends
            except BrokenPipeError:
                raise  # as kombu's ack_log_error: the consumer reconnects
            except errors as error:
                logger.critical("Couldn't ack %d messages, reason: %r", len(acks), error, exc_info=True)


acks = AckQueue()


def groups_acks(message: Any) -> bool:
    """Whether `message` came on a channel whose acks can be sent in groups (RabbitMQ's, the worker's)."""
    return isinstance(getattr(message, "channel", None), GroupingChannel)
