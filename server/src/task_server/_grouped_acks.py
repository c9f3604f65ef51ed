"""Late acks of the calls served by threads, sent by the event loop in groups (RabbitMQ).

Celery hands each call's late ack from the thread that ran the call to the event loop, one
callback per ack (`call_soon_ack`), and each callback wrote a `basic.ack` of its own. Here the acks
of a RabbitMQ channel that can group them (`_internals.amqp_acks`) are queued instead, and one
callback on the loop sends all that were queued by the time it runs: in one write, with one
`basic.ack(multiple=True)` for a run covering the oldest deliveries the channel holds. An ack is
still sent after the call's result is stored, on the loop's next turn, as before.
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


class AckQueue:
    """Acks queued by threads for the event loop, sent together by one callback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[tuple[Any, tuple[type[BaseException], ...]]] = []
        self._scheduled = False
        self._scheduled_at = 0.0

    def add(self, hub: Any, message: Any, errors: tuple[type[BaseException], ...]) -> None:
        """Queue the ack of `message` (kombu's); `errors`, the connection errors it may meet."""
        with self._lock:
            self._waiting.append((message, errors))
            now = time.monotonic()
            if self._scheduled and now - self._scheduled_at < RESCHEDULE_AFTER:
                return
            self._scheduled, self._scheduled_at = True, now
        hub.call_soon(self.send)

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
