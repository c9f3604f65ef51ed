"""Publishing on RabbitMQ: the envelope `_direct` builds, through kombu's public `Producer.publish`.

Hot path (measured, CPU per publish into a quorum queue with confirms, 4 x 500 publishes): Celery's
`send_task` ~600-790 µs, kombu's `Producer.publish` of the same message ~340-450 µs, a bare py-amqp
publish ~370-460 µs. The message is the one `send_task` writes (`tests/wire/test_amqp_message.py`
compares it with the golden fixtures); eta, expires and priority keep `send_task`.

A batch waits for its publisher confirms in rounds, not message by message: a channel of its own,
put in confirm mode (`confirm_select`), takes up to `window` messages written back to back, then
the confirms are read (RabbitMQ settles many with one `basic.ack`, `multiple=True`). Each message is
still confirmed before `publish_many` returns; only the waiting is shared.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from amqp.exceptions import AMQPError, MessageNacked
from celery import Celery

from ._direct import EnvelopeBuilder

if TYPE_CHECKING:
    from ._producer import Outgoing


class AmqpPublisher:
    """Publishes prebuilt envelopes on RabbitMQ; every publish is confirmed before it returns."""

    def __init__(self, app: Celery, envelopes: EnvelopeBuilder, socket_timeout: float, window: int) -> None:
        self._app = app
        self._envelopes = envelopes
        self._timeout = socket_timeout
        self._window = window
        # Batches share one connection and channel in confirm mode, one batch at a time.
        self._batch_lock = threading.Lock()
        self._connection: Any = None
        self._producer: Any = None
        self._unconfirmed: set[int] = set()
        self._next_tag = 1
        self._nacked = 0

    def publish(self, producer: Any, message: Outgoing) -> None:
        """One message on a pooled producer, whose channel waits for each publish's confirm."""
        body, headers = self._envelopes.parts(message)
        producer.publish(body, **self._options(message, headers))

    def publish_many(self, messages: Sequence[Outgoing]) -> None:
        """Every message, confirmed, `window` at a time; a failure drops the batch connection."""
        with self._batch_lock:
            reused, first = self._producer is not None, self._next_tag
            try:
                self._publish_many(messages)
            except BaseException as error:
                published = self._next_tag - first
                self._drop()
                # A kept connection the broker closed meanwhile (a restart) fails at the first write,
                # before anything was published: one more try on a fresh connection.
                if not (reused and published == 0 and isinstance(error, OSError | AMQPError)):
                    raise
                try:
                    self._publish_many(messages)
                except BaseException:
                    self._drop()
                    raise

    def _publish_many(self, messages: Sequence[Outgoing]) -> None:
        producer = self._batch_producer()
        for start in range(0, len(messages), self._window):
            for message in messages[start : start + self._window]:
                body, headers = self._envelopes.parts(message)
                producer.publish(body, **self._options(message, headers))
                self._unconfirmed.add(self._next_tag)
                self._next_tag += 1
            self._await_confirms()

    def close(self) -> None:
        with self._batch_lock:
            if self._connection is not None:
                self._connection.release()
                self._connection = self._producer = None

    def _options(self, message: Outgoing, headers: dict[str, Any]) -> dict[str, Any]:
        # What `send_task` gives kombu for a direct queue: the default exchange, the queue's name as
        # routing key, the queue declared once per channel (kombu remembers it), a persistent message.
        return {
            "exchange": "",
            "routing_key": message.queue,
            "declare": [self._app.amqp.queues[message.queue]],
            "headers": headers,
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "correlation_id": message.task_id,
            "reply_to": self._envelopes.reply_to,
            "delivery_mode": 2,
            "retry": False,
        }

    def _batch_producer(self) -> Any:
        if self._producer is None:
            # Confirms are selected on the channel below, so that a publish does not wait for its own.
            # No heartbeats: nothing would send them between batches, and RabbitMQ would then close
            # an idle connection; every read and write here is bounded instead.
            connection = self._app.connection_for_write(heartbeat=0, transport_options={"confirm_publish": False})
            try:
                channel = connection.channel()
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
            except BaseException:
                connection.collect()
                raise
            self._connection = connection
            self._producer = connection.Producer(channel, auto_declare=False)
        return self._producer

    def _await_confirms(self) -> None:
        # Each read is bounded; a broker that stops confirming fails the batch within `socket_timeout`.
        while self._unconfirmed:
            self._connection.drain_events(timeout=self._timeout)
        if self._nacked:
            nacked, self._nacked = self._nacked, 0
            raise MessageNacked(f"RabbitMQ refused {nacked} message(s) of the batch (basic.nack)")

    def _settle(self, tag: int, multiple: bool) -> int:
        if not multiple:
            if tag not in self._unconfirmed:
                return 0
            self._unconfirmed.remove(tag)
            return 1
        settled = {pending for pending in self._unconfirmed if pending <= tag}
        self._unconfirmed -= settled
        return len(settled)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked += self._settle(tag, multiple)

    def _drop(self) -> None:
        # Dropped without a word: a polite close would wait for replies a frozen broker never sends.
        if self._connection is not None:
            self._connection.collect()
        self._connection = self._producer = None
        self._unconfirmed.clear()
        self._next_tag, self._nacked = 1, 0
