"""The worker's broker connection: kombu's Redis transport (plain or Sentinel), except that an item on a queue that
is not a Celery envelope at all (not JSON, JSON of another shape, nested too deeply) is dropped with a log line,
that an envelope kombu cannot turn into a message (an unknown `body_encoding`, a body that is not
base64, properties of the wrong type) is refused, with a record when it names a task id, that the
channel reuses its redis-py client objects, writes its unacked record without waiting
(`_unacked`) and pops a backlog several messages per round trip (`_batch_pop`).

kombu parses each item it pops inside its event loop; one unreadable item raises there and
stops the whole worker ("Unrecoverable error"), so any producer able to LPUSH could take every
worker down. Message bodies and headers are checked later, per task, by `_intake`.
"""

from __future__ import annotations

import binascii
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.exceptions
from amqp.exceptions import RecoverableConnectionError
from celery.app.amqp import AMQP
from celery.worker import state as worker_state
from kombu.connection import Connection
from kombu.transport import pyamqp, virtual
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual.base import Base64
from kombu.utils.json import dumps, loads

from task_contracts.wire import TAKING_KEY

from . import _bookkeeping as bookkeeping
from . import _unrecorded as unrecorded
from ._backend import out_of_memory
from ._batch_pop import UNREADABLE, BatchPopping, UnreadableEnvelope, retag
from ._internals.amqp_acks import GroupingConnection
from ._internals.amqp_frames import RECEIVED_BYTES, guard_property_decoding
from ._internals.amqp_reads import read_available, reads_in_bursts
from ._internals.channel import (
    bound_queues,
    delivered_messages,
    flush_settled,
    message_priority,
    pop_client_address,
    priority_key,
    raw_payload,
    remove_from_unacked,
    restore_message,
    rotate_queue,
)
from ._internals.event_loop import quiet_transport_turn
from ._message_checks import MAX_NESTING, nesting_exceeds
from ._pipelined import holding_writes
from ._recorded_pop import RECORD_OR_PUT_BACK, RecordRefused, is_full
from ._sizes import text_bytes
from ._unacked import UnackedLedger

#: Dotted path given to `Celery(amqp=...)`.
WORKER_AMQP = f"{__name__}:WorkerAMQP"

logger = logging.getLogger(__name__)


class LedgeredQoS(kombu_redis.QoS):
    """kombu's Redis QoS, with the unacked record written by `UnackedLedger` (no wait for Redis).

    A channel with a global key prefix keeps kombu's pipelines: its prefixing client rewrites their
    keys, which a raw command would bypass.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.recorded_at_pop(delivery_tag):  # its pop wrote its record (`_recorded_pop`)
            virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]
            return
        ledger = self.channel.unacked_ledger()
        if ledger is None:
            try:
                super().append(message, delivery_tag)  # type: ignore[no-untyped-call]
            except redis.exceptions.ResponseError as error:
                if not out_of_memory(error):
                    raise
                # Popped, and a full Redis refuses its record: kept for a requeue once Redis has room,
                # not run (a worker lost meanwhile would lose it), not raised in the event loop.
                _keep(self.channel, None, message)
                raise RecordRefused(str(error)) from None
            return
        record = unacked_record(self.channel, message)
        # Written with the next write, at the latest before the message is handed on (`_unacked`);
        # if that write fails, the message was popped and is recorded nowhere: kept for a requeue.
        ledger.remember(
            delivery_tag,
            record,
            on_unsent=functools.partial(_keep, self.channel, None, message),
            taking=self.channel.claim_taking(),
        )
        virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]

    def ack(self, delivery_tag: str) -> None:
        ledger = self.channel.unacked_ledger()
        if ledger is None:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
            return
        ledger.forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        self.channel.settle_unacked()  # a requeue reads the entry back
        super().reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        channel = self.channel
        try:
            with channel.conn_or_acquire() as client:
                bookkeeping.repair_keys(client, self.unacked_index_key, self.unacked_key, self.unacked_mutex_key)
            super().restore_visible(start, num, interval)  # type: ignore[no-untyped-call]
        except redis.exceptions.OutOfMemoryError as error:
            # A full Redis refuses the sweep's lock (SET NX): the next sweep tries again. Raised, it
            # was a traceback in the log every sweep, or stopped a consumer draining events.
            logger.warning("the unacked-message sweep waits for a full Redis: %s", error)

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        """kombu's, except that an entry that is not `[message, exchange, routing key]` is removed and
        reported (`_bookkeeping`) instead of raising in every sweep."""
        channel = self.channel
        malformed: list[Any] = []

        def restore_transaction(pipe: Any) -> None:
            raw = pipe.hget(self.unacked_key, tag)
            pipe.multi()
            remove_from_unacked(self, tag, pipe)
            malformed.clear()
            if raw:
                entry = bookkeeping.unacked_entry(raw)
                if entry is None:
                    malformed.append(raw)
                else:
                    restore_message(channel, entry, pipe, leftmost)

        with channel.conn_or_acquire(client) as connection:
            connection.transaction(restore_transaction, self.unacked_key)
        if malformed:
            bookkeeping.report(f"unacked entry {tag!r}", "not a [message, exchange, routing key] triple", malformed[0])

    def restore_unacked(self, client: Any = None) -> None:
        try:
            self.channel.settle_unacked()
            super().restore_unacked(client)  # type: ignore[no-untyped-call]
        except self.channel.connection_errors:
            # The channel closes because Redis is gone, which may have lost the unacked entries too.
            flush_settled(self)
            started = {request.id for request in worker_state.active_requests}
            for tag, message in delivered_messages(self).items():
                if (message.headers or {}).get("id") not in started:
                    _keep(self.channel, tag, message)
            delivered_messages(self).clear()
            raise


def unacked_record(channel: Any, message: Any) -> str:
    """kombu's unacked entry of `message`, the JSON of `[envelope, exchange, routing key]`: around the
    text the envelope was popped as, when the channel still has it (as the pop script writes it,
    `_recorded_pop`), instead of encoding the envelope again (~10x the instructions)."""
    payload, delivery = raw_payload(message), message.delivery_info
    exchange, routing_key = delivery["exchange"], delivery["routing_key"]
    text = channel.popped_text(payload)
    if text is None or not (isinstance(exchange, str) and isinstance(routing_key, str)):
        return dumps([payload, exchange, routing_key])  # type: ignore[no-any-return, no-untyped-call]
    return f"[{text},{_delivery_suffix(exchange, routing_key)}]"


@functools.lru_cache(maxsize=64)
def _delivery_suffix(exchange: str, routing_key: str) -> str:
    # The same few queues on every call: encoded once each.
    return f"{json.dumps(exchange)},{json.dumps(routing_key)}"


def _keep(channel: Any, tag: str | None, message: Any) -> None:
    """Keep `message` (delivered on `channel`) until a working channel requeues it (`_unrecorded`)."""
    delivery = message.delivery_info
    priority = message_priority(channel, raw_payload(message))
    for queue in bound_queues(channel, delivery["exchange"], delivery["routing_key"]):
        unrecorded.keep(tag, priority_key(channel, queue, priority), dumps(raw_payload(message)))  # type: ignore[no-untyped-call]


class CheckedMessage(virtual.Message):
    """kombu's message from a popped envelope; an envelope it cannot read raises `UnreadableEnvelope`
    (with the envelope, whose task id may still be readable) before it is counted as delivered."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        text = channel.popped_text(payload)
        problem = envelope_refusal(payload, channel.codecs, text=text)
        if problem is None:
            try:
                super().__init__(payload, channel=channel, **kwargs)  # type: ignore[no-untyped-call]
            except Exception as error:  # what decoding a hostile body raises has no common base
                encoding = payload["properties"].get("body_encoding")
                problem = f"the message body could not be decoded from {encoding} ({type(error).__name__}: {error})"
            else:
                if text is not None:  # the whole message's size, for `--max-message-bytes` (`_intake`)
                    setattr(self, RECEIVED_BYTES, received_bytes(text, payload.get("body"), self.body))
                return
        raise UnreadableEnvelope(payload, problem)


def received_bytes(text: str, sent_body: Any, body: Any) -> int:
    """The size of a Redis message as received (its envelope's JSON text), with its body counted as
    the bytes it decodes to (`body`, from `sent_body`): a base64 body (every Celery producer's) is a
    third larger on the wire, and the cap means the same on RabbitMQ, where bodies are raw."""
    size = text_bytes(text)
    if isinstance(sent_body, str):
        size -= text_bytes(sent_body)
    if isinstance(body, str | bytes):
        size += text_bytes(body)
    return size


def envelope_refusal(envelope: Any, codecs: Mapping[str, Any], text: str | None = None) -> str | None:
    """Why a parsed queue item cannot become a message (kombu's reading and the unacked record need
    these); `codecs`, the body encodings the channel knows besides utf-8; `text`, the JSON the
    envelope was parsed from, if known (its nesting is then walked only when its brackets could
    nest too deep)."""
    if not isinstance(envelope, dict):
        return "the item is not a JSON object"
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        return "the envelope has no properties object"
    if not isinstance(properties.get("delivery_tag"), str):
        return "the envelope's delivery_tag is not a string"
    delivery = properties.get("delivery_info")
    if not (isinstance(delivery, dict) and "exchange" in delivery and "routing_key" in delivery):
        return "the envelope's delivery_info is not an object with exchange and routing_key"
    if not isinstance(envelope.get("body", ""), str):
        return "the envelope's body is not a string"
    encoding = properties.get("body_encoding")
    if encoding is not None and not (isinstance(encoding, str) and (encoding.lower() == "utf-8" or encoding in codecs)):
        known = ", ".join(sorted({*codecs, "utf-8"}))
        return f"unknown body_encoding {encoding!r} (known: {known})"
    if not isinstance(envelope.get("headers") or {}, dict):
        return "the envelope's headers are not an object"
    if nesting_exceeds(envelope, MAX_NESTING, hint=text):
        return f"the envelope is nested too deeply (more than {MAX_NESTING} levels)"
    return None


class _Guarded(BatchPopping):
    QoS = LedgeredQoS
    Message = CheckedMessage

    def decode_body(self, body: Any, encoding: str | None = None) -> Any:
        """kombu's: a base64 body (every Celery message on Redis) decoded by `binascii` directly, as
        kombu's codec decodes it (`base64.b64decode` of its UTF-8 bytes, not strict), without the
        codec's, `base64`'s and kombu's Python steps around it on the path of every call."""
        codec = self.codecs.get(encoding)  # type: ignore[attr-defined]
        if encoding == "base64" and isinstance(body, str) and isinstance(codec, Base64):
            return binascii.a2b_base64(body.encode())
        return super().decode_body(body, encoding)  # type: ignore[misc]

    def refuse_envelope(self, envelope: Any, problem: str) -> None:
        """Hand an envelope that never became a message to the worker's consumer (`_consumer`)."""
        refuse = getattr(self.connection.client, "refuse_envelope", None)  # type: ignore[attr-defined]
        if refuse is None or not isinstance(envelope, dict):
            logger.error("dropped an item on a task queue that is not a Celery message envelope: %s", problem)
        else:
            refuse(envelope, problem)

    def records_at_pop(self) -> bool:
        return self.unacked_ledger() is not None

    def taken_nothing(self, taking: str) -> None:
        ledger: UnackedLedger | None = self.__dict__.get("_unacked_ledger")
        try:
            if ledger is not None:
                ledger.taken(taking)
            else:  # closing (kombu's close reads the pending BRPOP after the ledger is closed)
                self.create_client().zrem(TAKING_KEY, taking)
        except redis.exceptions.ResponseError as error:  # a full Redis, the key of the wrong type: it ages out
            logger.debug("could not remove a BRPOP's member of the taking set: %s", error)

    def take_popped(self, key: str, item: str, full: bool) -> bool:
        """Record a BRPOP's item as unacked and hand it on, or put it back if Redis is full (`_recorded_pop`)."""
        ledger = self.unacked_ledger()
        if ledger is None or not full:
            # kombu's record (a key prefix; a full Redis refuses it at delivery: `RecordRefused`), or
            # taken while Redis had room (recorded by the QoS with the next write, even if full by
            # then). An envelope the delivery refuses raises first: it is never recorded.
            delivered = super().take_popped(key, item, full)
            self.full_backoff().recorded()
            return delivered
        payload = loads(item)  # type: ignore[no-untyped-call]
        if envelope_refusal(payload, self.codecs, text=item) is not None:  # type: ignore[attr-defined]
            return super().take_popped(key, item, full)  # a refused envelope is never recorded
        tag = self.next_delivery_tag()
        retag(payload, tag)  # the worker's own tag, as every delivery (`_batch_pop`)
        delivery = payload["properties"]["delivery_info"]
        record = dumps([payload, delivery["exchange"], delivery["routing_key"]])  # type: ignore[no-untyped-call]
        qos: Any = self.qos  # type: ignore[attr-defined]
        bookkeeping = (qos.unacked_index_key, qos.unacked_key, key, TAKING_KEY)
        queue = key.rsplit(self.sep, 1)[0]  # type: ignore[attr-defined]
        try:
            reply = ledger.send_with_held("EVAL", RECORD_OR_PUT_BACK, 4, *bookkeeping, time.time(), tag, record, item)()
        except redis.exceptions.ResponseError as error:
            # Refused for another reason (an ACL): handed on and recorded by the QoS, as kombu does.
            logger.error("the broker refused a write of the unacked-message record: %s", error)
            return super().take_popped(key, item, full)
        except self.connection_errors:  # type: ignore[attr-defined]
            # Popped, and maybe recorded (the reply alone lost): the requeue also removes a record by `tag`.
            unrecorded.keep(tag, key, item)
            raise
        rotate_queue(self, queue)
        if is_full(reply):
            self.full_backoff().refused(queue)
            return False
        self.__dict__["_popped"] = (payload, item)  # its text, for the message's size (`CheckedMessage`)
        try:
            self.deliver_recorded(payload, queue)
        finally:
            self.__dict__["_popped"] = None
        return True

    def deliver_recorded(self, payload: Any, queue: str) -> None:
        """Deliver an item whose unacked record its pop wrote; the QoS then writes none
        (`recorded_at_pop`), and an item that never becomes a message loses its record."""
        tag = payload["properties"]["delivery_tag"]
        self.__dict__["_recorded_tag"] = tag
        try:
            super().deliver_recorded(payload, queue)
        except (UnreadableEnvelope, *UNREADABLE):
            ledger = self.unacked_ledger()
            if ledger is not None:
                ledger.forget(tag)
            raise
        finally:
            self.__dict__["_recorded_tag"] = None

    def drop_record(self, tag: str) -> None:
        ledger = self.unacked_ledger()
        if ledger is not None:
            ledger.forget(tag)

    def recorded_at_pop(self, delivery_tag: str) -> bool:
        """Whether the message now being delivered (`delivery_tag`) was recorded by its pop."""
        if self.__dict__.get("_recorded_tag") != delivery_tag:
            return False
        self.__dict__["_recorded_tag"] = None
        return True

    def unacked_ledger(self) -> UnackedLedger | None:
        """This channel's writer of the unacked record (a new one after a reconnect); None with a key prefix."""
        if self.global_keyprefix:  # type: ignore[attr-defined]
            return None
        pool = self.pool  # type: ignore[attr-defined]
        ledger: UnackedLedger | None = self.__dict__.get("_unacked_ledger")
        if ledger is None or ledger.pool is not pool:
            if ledger is not None:
                ledger.close()
            qos = self.qos  # type: ignore[attr-defined]
            ledger = self.__dict__["_unacked_ledger"] = UnackedLedger(pool, qos.unacked_index_key, qos.unacked_key)
        return ledger

    def settle_unacked(self) -> None:
        """Wait until Redis has run every unacked-record write sent so far."""
        ledger = self.__dict__.get("_unacked_ledger")
        if ledger is not None:
            ledger.settle()

    def close(self) -> None:
        self._end_pending_pop()
        ledger = self.__dict__.pop("_unacked_ledger", None)
        if ledger is not None:
            try:
                ledger.close()
            except (redis.exceptions.RedisError, OSError) as error:
                logger.warning("closing the broker channel: %s", error)
        requeue = self._requeuer_for_close()  # made now: the closed channel has no connection to make it
        super().close()
        if requeue is not None and unrecorded.pending():  # an item kombu's close popped (`_batch_pop._keep_at_close`)
            try:
                requeue()
            except (redis.exceptions.RedisError, OSError) as error:
                logger.warning("the messages held at the channel's close stay held for the next connection: %s", error)

    def _requeuer_for_close(self) -> Callable[[], None] | None:
        """Requeue what is kept (`_unrecorded`) right after the close, while this channel's Redis
        answers: the worker may be stopping for good (a warm shutdown), and then no later channel
        would; if Redis fails, all stay kept for the next channel. None when no client can be made."""
        client = self.__dict__.get("_sync_client")
        try:
            qos = self.qos  # type: ignore[attr-defined]
            if client is None:
                client = self.create_client()
        except (redis.exceptions.RedisError, OSError, AttributeError):  # no connection to make one from
            return None
        return functools.partial(unrecorded.requeue, client, qos.unacked_index_key, qos.unacked_key)

    def _end_pending_pop(self) -> None:
        """kombu's close reads the reply of a pending BRPOP, so that an item it popped is not lost:
        on an idle worker, a wait of up to the BRPOP's timeout (1 s) at every shutdown. CLIENT UNBLOCK
        ends the BRPOP at once, as if its timeout had passed; one that has popped already is blocked
        no more and its reply is read as before. Without the permission (an ACL), the wait stays."""
        address = pop_client_address(self)
        if address is None:
            return
        try:
            client = self.create_client()
            for entry in client.client_list():
                if entry.get("addr") == address:
                    client.client_unblock(entry["id"])
        except (redis.exceptions.RedisError, OSError) as error:
            logger.debug("could not end the pending BRPOP before closing (waiting for it instead): %s", error)

    def connection_params(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # type: ignore[attr-defined]
            # The broker connection was lost and closed (a Redis restart, a Sentinel failover); kombu
            # still acknowledges finished tasks and restores unacked messages through this channel, and
            # would build a new pool from the closed connection: its AttributeError stopped the worker
            # ("Unrecoverable error"). A connection error is what those paths expect; Celery reconnects,
            # and the unacked messages come back from the unacked record after the visibility timeout.
            raise redis.exceptions.ConnectionError("the broker connection is closed (lost and reconnecting)")
        return super().connection_params(asynchronous)

    def start_pop(self, timeout: float | None = None) -> None:
        ledger = self.__dict__.get("_unacked_ledger")
        if ledger is not None:
            ledger.flush_all()  # nothing stays held while the worker waits for the next message
        if unrecorded.pending():  # before this channel pops anything
            qos = self.qos  # type: ignore[attr-defined]
            try:
                unrecorded.requeue(self.create_client(), qos.unacked_index_key, qos.unacked_key)
            except redis.exceptions.ResponseError as error:
                # A full Redis refuses the RPUSH: they stay kept for the next pop. Raised here, in
                # kombu's event loop, the error would stop the worker.
                logger.warning("could not requeue the messages held since the broker connection was lost: %s", error)
        super().start_pop(timeout)

    def create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super().create_client(asynchronous=True)
        pool = self.pool  # type: ignore[attr-defined]
        client = self.__dict__.get("_sync_client")
        if client is None or client.connection_pool is not pool:
            client = self.__dict__["_sync_client"] = super().create_client()
        return client


class GuardedChannel(_Guarded, kombu_redis.Channel):
    pass


class GuardedSentinelChannel(_Guarded, kombu_redis.SentinelChannel):
    pass


class _QuietTurns:
    """kombu's Redis transport, whose event-loop turn adds no reader the hub has already (`_internals.event_loop`)."""

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        register = super().register_with_event_loop  # type: ignore[misc]
        quiet_transport_turn(self, loop, lambda: register(connection, loop))


class GuardedTransport(_QuietTurns, kombu_redis.Transport):
    Channel = GuardedChannel


class GuardedSentinelTransport(_QuietTurns, kombu_redis.SentinelTransport):
    Channel = GuardedSentinelChannel


class BurstReadingTransport(pyamqp.Transport):
    """kombu's RabbitMQ transport, whose event loop reads every frame the socket holds in one turn
    (`_internals.amqp_reads`) rather than one method per turn, and whose channels can send acks in
    groups (`_internals.amqp_acks`, `_grouped_acks`)."""

    Connection = GroupingConnection

    def on_readable(self, connection: Any, loop: Any) -> None:
        if not reads_in_bursts(connection):
            super().on_readable(connection, loop)  # type: ignore[no-untyped-call]
            return
        if not connection.connected:
            raise RecoverableConnectionError("Socket was disconnected")
        with holding_writes():  # the burst's admissions asked early go to Redis in one write
            read_available(connection)


# RabbitMQ keeps headers and body apart, so no item can break kombu's parsing there.
_GUARDED = {
    kombu_redis.Transport: GuardedTransport,
    kombu_redis.SentinelTransport: GuardedSentinelTransport,
    pyamqp.Transport: BurstReadingTransport,
}


class GuardedConnection(Connection):
    """Resolves the URL as usual (TLS included), then uses the guarded transport on Redis and Sentinel."""

    def get_transport_cls(self) -> Any:
        transport = super().get_transport_cls()  # type: ignore[no-untyped-call]
        if transport is pyamqp.Transport:
            guard_property_decoding()  # a header py-amqp cannot decode must not stop the worker
        return _GUARDED.get(transport, transport)


class WorkerAMQP(AMQP):  # type: ignore[misc]
    Connection = GuardedConnection
