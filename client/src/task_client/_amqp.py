"""Publishing on RabbitMQ: the envelope `_direct` builds, through py-amqp's public `basic_publish` on
a channel kombu opened, confirmed in rounds shared by every thread of the client.

Hot path (measured, CPU per publish into a quorum queue with confirms, 4 x 500 publishes): Celery's
`send_task` ~600-790 µs, kombu's `Producer.publish` of the same message ~340-450 µs, a bare py-amqp
publish ~370-460 µs, each waiting for its own confirm. Within a round (3,000 messages, a confirm read
every 200), CPU per message: `Producer.publish` 108-155 µs, `basic_publish` 46-96 µs (kombu binds
and copies the queue to check its declaration, and builds the same `amqp.Message`, on every publish);
so the message is built here as kombu builds it, and each queue is declared once per channel. It is
the one `send_task` writes (`tests/wire/test_amqp_message.py` compares it with the golden fixtures);
eta, expires and priority keep `send_task`. Its headers' field table is written here too
(`header_table`: py-amqp's bytes, written with fewer steps).

Publisher confirms are read in rounds, as a database commits a group: one connection, its channel
in confirm mode (`confirm_select`). A thread that publishes while no round runs leads one: it writes
every message waiting then (its own, and those of threads that came meanwhile), `window` at a time,
and reads their confirms (RabbitMQ acknowledges many with one `basic.ack`, `multiple=True`). Threads
that come during a round wait for it to end, and one of them leads the next. Every message is still
confirmed before its publish returns; a broker that stops confirming fails the round within
`socket_timeout`. Only the leader touches the connection, so py-amqp is never used from two threads.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from amqp import Message
from amqp.exceptions import AMQPError, MessageNacked
from celery import Celery
from kombu.common import maybe_declare

from task_contracts.wire import SHAPE_HEADER

from ._direct import _CALL_HEADERS, _EMBED, EnvelopeBuilder, _dumps, _short_repr

if TYPE_CHECKING:
    from ._producer import Outgoing


_LENGTH = struct.Struct(">I").pack
_INT = struct.Struct(">ci").pack
_LONG = struct.Struct(">cq").pack
_DOUBLE = struct.Struct(">cd").pack
#: A header name's encoded text, by name (the standard names and a client's own; bounded).
_KEYS: dict[Any, bytes] = {}
_KEYS_KEPT = 256


#: The last contract shape written, and its item: the same object in every call of a contract
#: (`Contract.shape`, never changed), so written once, not per call (half of a call's table).
_last_shape: tuple[Any, bytes] = (None, b"V")


class _Unusual(Exception):
    """A header value `header_table` leaves to py-amqp (a Decimal, a datetime, an unknown type, a long name)."""


def _key(name: Any) -> bytes:
    encoded = name.encode("utf-8", "surrogatepass") if isinstance(name, str) else name
    if not isinstance(encoded, bytes) or len(encoded) > 255:
        raise _Unusual
    text = bytes((len(encoded),)) + encoded
    if len(_KEYS) < _KEYS_KEPT and type(name) is str:
        _KEYS[name] = text
    return text


def _item(value: Any) -> bytes:
    # py-amqp's `_write_item`, test for test (its order of isinstance checks).
    if isinstance(value, str | bytes):
        encoded = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        return b"S" + _LENGTH(len(encoded)) + encoded
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, float):
        return _DOUBLE(b"d", value)
    if isinstance(value, int):
        return _LONG(b"L", value) if value > 2147483647 or value < -2147483647 else _INT(b"I", value)
    if isinstance(value, dict):
        table = header_table(value)
        return b"F" + _LENGTH(len(table)) + table
    if isinstance(value, list | tuple):
        array = b"".join([_item(item) for item in value])
        return b"A" + _LENGTH(len(array)) + array
    if value is None:
        return b"V"
    raise _Unusual


def header_table(headers: Mapping[Any, Any]) -> bytes:
    """The AMQP field table py-amqp writes for `headers` (without its length), byte for byte;
    `_Unusual` for what this leaves to py-amqp.

    Hot path (measured): py-amqp writes a table through a BytesIO and a `struct.pack` per item,
    ~13 us for a call's 21 headers; this, ~4 us (tests/client/test_amqp_table.py compares the two).
    """
    global _last_shape
    parts = []
    keys = _KEYS
    shape = _last_shape
    for name, value in headers.items():
        parts.append(keys.get(name) or _key(name))
        kind = type(value)
        if kind is str:
            encoded = value.encode("utf-8", "surrogatepass")
            parts.append(b"S" + _LENGTH(len(encoded)) + encoded)
        elif value is None:
            parts.append(b"V")
        elif value is shape[0]:
            parts.append(shape[1])
        else:
            encoded = _item(value)
            if name == SHAPE_HEADER:
                _last_shape = (value, encoded)  # held: no other object can take its id meanwhile
            parts.append(encoded)
    return b"".join(parts)


def _text(value: str) -> bytes:
    encoded = value.encode("utf-8", "surrogatepass")
    return b"S" + _LENGTH(len(encoded)) + encoded


# The fixed bytes of a call's header table (`AmqpPublisher._standard`), in `EnvelopeBuilder.parts`' order.
_LANG_TASK = _key("lang") + _text("py") + _key("task")
_ID = _key("id")
_UNSET_TO_TIME_LIMIT = b"".join(
    [_key(name) + b"V" for name in ("shadow", "eta", "expires", "group", "group_index")]
    + [_key("retries"), _INT(b"I", 0), _key("timelimit")]
)
_NO_TIME_LIMIT = _item([None, None])
_ROOT_ID = _key("root_id")
_PARENT_TO_ARGSREPR = _key("parent_id") + b"V" + _key("argsrepr")
_KWARGSREPR = _key("kwargsrepr")


class _TableMessage(Message):  # type: ignore[misc]
    """A message whose `application_headers` are given as their field table (`header_table`).

    `PROPERTIES` is where py-amqp's content classes declare their properties' types; a long string
    ('x') is written as its length and bytes, exactly what a table ('F') is written as.
    """

    PROPERTIES: ClassVar[list[tuple[str, str]]] = [
        (name, "x" if name == "application_headers" else kind) for name, kind in Message.PROPERTIES
    ]


class _Publication:
    """Messages of one publish call, how their round ended, and its thread's wake-up."""

    __slots__ = ("_asleep", "done", "error", "leads", "messages", "nacked", "woken")

    def __init__(self, messages: Sequence[Outgoing]) -> None:
        self.messages = messages
        self.done = False
        self.error: BaseException | None = None
        self.nacked = 0
        self.leads = False  # its thread leads the next round
        self.woken = False
        self._asleep = threading.Lock()  # held until `wake`: its thread sleeps on it
        self._asleep.acquire()

    def sleep(self, timeout: float) -> bool:
        """Until `wake`, for at most `timeout`; whether it was woken."""
        return self._asleep.acquire(timeout=timeout)

    def wake(self) -> None:
        """Wake its thread: its round ended, or it leads the next (at most once; under the publisher's lock)."""
        if not self.woken:
            self.woken = True
            self._asleep.release()

    def outcome(self) -> None:
        if self.error is not None:
            raise self.error
        if self.nacked:
            raise MessageNacked(f"RabbitMQ refused {self.nacked} message(s) (basic.nack)")


class AmqpPublisher:
    """Publishes prebuilt envelopes on RabbitMQ; every publish is confirmed before it returns."""

    def __init__(self, app: Celery, envelopes: EnvelopeBuilder, socket_timeout: float, window: int) -> None:
        self._app = app
        self._envelopes = envelopes
        self._origin_to_stamps = b"".join(
            (
                _key("origin"),
                _text(envelopes.origin),
                _key("ignore_result"),
                b"V",
                _key("replaced_task_nesting"),
                _INT(b"I", 0),
                _key("stamped_headers"),
                b"V",
                _key("stamps"),
                b"F" + _LENGTH(0),
            )
        )
        self._timeout = socket_timeout
        self._window = window
        self._lock = threading.Lock()
        self._waiting: list[_Publication] = []
        self._leading = False
        # The leader's alone, below.
        self._connection: Any = None
        self._channel: Any = None
        self._declared: set[str] = set()  # queues declared on `_channel`
        self._unconfirmed: dict[int, _Publication] = {}
        self._next_tag = 1

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish `messages` in the next round; return once RabbitMQ confirmed every one of them.

        Each waiting thread is woken once, when its round ended or when it is to lead the next one,
        not at the end of every round to look (measured with 32 threads: the client's context
        switches -28%).
        """
        publication = _Publication(messages)
        with self._lock:
            self._waiting.append(publication)
            if not self._leading:
                self._leading = publication.leads = True
        try:
            while not publication.done and not publication.leads:
                # Bounded: a round ends within its reads' bounds and wakes whom it concerns.
                if not publication.sleep(self._timeout):
                    with self._lock:
                        if not self._leading and not publication.done:
                            # A safety net: every round hands over to a waiting thread as it ends.
                            self._leading = publication.leads = True
        except BaseException:
            with self._lock:
                if publication in self._waiting:
                    self._waiting.remove(publication)
                if publication.leads:
                    self._hand_over([])
            raise
        if not publication.done:
            published: list[_Publication] = []
            try:
                published = self._lead()
            finally:
                with self._lock:
                    self._hand_over(published)
        publication.outcome()

    def _hand_over(self, published: list[_Publication]) -> None:
        """End a round (under the lock): wake the threads whose publications it settled, and the one
        leading the next round, if any waits."""
        for settled in published:
            settled.wake()
        if self._waiting:
            following = self._waiting[0]
            following.leads = True
            following.wake()
        else:
            self._leading = False

    def close(self) -> None:
        with self._lock:
            if not self._leading and self._connection is not None:
                self._connection.release()
                self._forget_connection()

    def _lead(self) -> list[_Publication]:
        with self._lock:
            publications, self._waiting = self._waiting, []
        reused, first = self._channel is not None, self._next_tag
        try:
            try:
                self._publish_round(publications)
            except (OSError, AMQPError):
                # A kept connection the broker closed meanwhile (a restart) fails at the first write,
                # before anything was published: one more try on a fresh connection.
                if not reused or self._next_tag != first:
                    raise
                self._drop()
                self._publish_round(publications)
        except BaseException as error:
            self._drop()
            for publication in publications:
                publication.error = error
        finally:
            for publication in publications:
                publication.done = True
        return publications

    def _publish_round(self, publications: list[_Publication]) -> None:
        channel = self._round_channel()
        written = 0
        for publication in publications:
            for message in publication.messages:
                self._declare(channel, message.queue)
                # The default exchange, the queue's name as routing key: as `send_task` publishes to a direct queue.
                channel.basic_publish(self._message(message), exchange="", routing_key=message.queue)
                self._unconfirmed[self._next_tag] = publication
                self._next_tag += 1
                written += 1
                if written % self._window == 0:
                    self._await_confirms()
        self._await_confirms()

    def _message(self, message: Outgoing) -> Message:
        # The properties kombu's `Producer.publish` gives py-amqp for `send_task`'s message: a persistent
        # message, JSON in UTF-8, the task id as correlation id, the client's reply channel.
        table: Any
        try:
            body, table = self._standard(message)
            kind = _TableMessage
        except _Unusual:
            body, headers = self._envelopes.parts(message)
            try:
                table, kind = header_table(headers), _TableMessage
            except _Unusual:
                table, kind = headers, Message  # py-amqp writes it (or names what it cannot write)
        return kind(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            application_headers=table,
            delivery_mode=2,
            correlation_id=message.task_id,
            reply_to=self._envelopes.reply_to,
        )

    def _standard(self, message: Outgoing) -> tuple[bytes, bytes]:
        """The body and header table of `parts(message)`, the table written from its fixed bytes
        around the fields that change per call, as `EnvelopeBuilder.build` writes the Redis
        envelope's text; `_Unusual` for a message with other headers than a call's own.

        Hot path (measured): the headers' dict is not built per call, nor walked to be written.
        """
        extra = message.headers
        if not extra.keys() <= _CALL_HEADERS or type(message.name) is not str or type(message.task_id) is not str:
            raise _Unusual
        args, kwargs = list(message.args), dict(message.kwargs)
        body = _dumps([args, kwargs, _EMBED]).encode()
        task_id = _text(message.task_id)
        time_limit = message.time_limit
        table = b"".join(
            (
                _LANG_TASK,
                _text(message.name),
                _ID,
                task_id,
                _UNSET_TO_TIME_LIMIT,
                _NO_TIME_LIMIT if time_limit is None else _item([time_limit, None]),
                _ROOT_ID,
                task_id,
                _PARENT_TO_ARGSREPR,
                _text(_short_repr(args)),
                _KWARGSREPR,
                _text(_short_repr(kwargs)),
                self._origin_to_stamps,
                header_table(extra),
            )
        )
        return body, table

    def _declare(self, channel: Any, queue: str) -> None:
        # As `send_task` declares it (a quorum queue, as the worker does), once per channel.
        if queue not in self._declared:
            maybe_declare(self._app.amqp.queues[queue], channel, retry=False)  # type: ignore[no-untyped-call]
            self._declared.add(queue)

    def _round_channel(self) -> Any:
        if self._channel is None:
            # Confirms are selected on the channel below, so that a publish does not wait for its own.
            # No heartbeats: nothing would send them between rounds, and RabbitMQ would then close an
            # idle connection; every read and write here is bounded instead.
            connection = self._app.connection_for_write(heartbeat=0, transport_options={"confirm_publish": False})
            try:
                # One attempt: kombu would retry 2 s later; the producer decides about retries.
                connection.ensure_connection(max_retries=0)
                channel = connection.channel()
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
            except BaseException:
                connection.collect()
                raise
            self._connection = connection
            self._channel = channel
        return self._channel

    def _await_confirms(self) -> None:
        # Each read is bounded; a broker that stops confirming fails the round within `socket_timeout`.
        while self._unconfirmed:
            self._connection.drain_events(timeout=self._timeout)

    def _settled(self, tag: int, multiple: bool) -> list[_Publication]:
        if not multiple:
            settled = self._unconfirmed.pop(tag, None)
            return [] if settled is None else [settled]
        tags = []
        for pending in self._unconfirmed:  # in publishing order: the tags grow
            if pending > tag:
                break
            tags.append(pending)
        return [self._unconfirmed.pop(pending) for pending in tags]

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settled(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        for publication in self._settled(tag, multiple):
            publication.nacked += 1

    def _drop(self) -> None:
        # Dropped without a word: a polite close would wait for replies a frozen broker never sends.
        if self._connection is not None:
            self._connection.collect()
        self._forget_connection()
        self._unconfirmed.clear()
        self._next_tag = 1

    def _forget_connection(self) -> None:
        self._connection = self._channel = None
        self._declared.clear()
