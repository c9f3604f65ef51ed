"""Several messages per Redis round trip when a queue has a backlog.

kombu's Redis transport takes one message per BRPOP: under a backlog the worker's main thread
spends a round trip, an event-loop registration and a socket read on every message, and with
light tasks that thread is the worker's limit (measured with a sampling profile of 10,000
one-message calls: its BRPOP cycle was about a third of its time).

So each BRPOP is preceded, in the same round of writes, by a script that pops what is already
waiting, up to the room the prefetch limit leaves, in BRPOP's own order (queues in the fair
cycle's order, each queue's priority lists first to last). Its reply comes at once: an empty one
when nothing waits, and the BRPOP behind it then blocks as before. Each popped item is recorded as
unacked by the script that pops it (`_recorded_pop`) and delivered exactly as a BRPOP's item is.

Every message is delivered under a delivery tag of the worker's own (`_tokens.unique_token`), never the
producer's: kombu keys its record of a delivered message, in memory and in Redis's unacked hash, by
that tag, so messages sharing one (`celery-ts` sends a fixed tag; any producer may) shared one
record: a warm shutdown holding 6 put back 1 and lost 5, and two workers holding one tag each could
remove the other's crash record. The unacked entry keeps the envelope as the producer sent it.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis.exceptions
from hiredis import pack_command
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from task_contracts.wire import TAKING_KEY

from . import _unrecorded as unrecorded
from ._internals.channel import (
    ChannelHooks,
    brpop_timeout,
    closing,
    deliver,
    next_queues,
    pending_pop,
    polling,
    priority_key,
    read_popped,
    rotate_queue,
    send_brpop,
    set_pending_pop,
    start_wait,
    stop_polling,
    written_together,
)
from ._internals.replies import read_reply
from ._message_checks import json_value, may_hold_kombu_type
from ._recorded_pop import POP_AND_RECORD, POP_AND_RECORD_SHA, PROBE, FullBackoff, RecordRefused, is_full
from ._tokens import unique_token

logger = logging.getLogger(__name__)

#: A channel's state of its pending pop (with kombu's `_in_poll` and `_brpop_sent_at`).
_POP_STATE = ("_batch_pending", "_batch_tags", "_probe_pending", "_taking")

#: The channels whose pop's message is being delivered now, innermost last (the event loop's thread only).
_delivering: list[Any] = []


def pop_ahead() -> None:
    """Have the channel whose message is being delivered write its next pop now.

    Called by the result store of a call run on the event loop right after writing the call's
    record, before reading Redis's reply: the pop reaches Redis while it is awake with the record
    (one wake-up fewer a call) and about 0.1 ms earlier than on the loop's next turn. Only once the
    delivered message's BRPOP reply is read, with room for another message while this one is still
    counted (prefetch), and never while Redis is full. Its reply is read on a later turn, after this
    call is acknowledged, exactly as the pop written on the next turn would be (measured: see the
    commit).
    """
    if _delivering:
        _delivering[-1].pop_ahead()


#: Most messages taken by one script call (the prefetch room left also bounds it).
MAX_BATCH = 16

#: Messages taken one per BRPOP before a batch pop looks whether more wait behind them.
PROBE_EVERY = 8

#: Packed pops kept per channel (one per order of its queues).
_POP_COMMANDS_KEPT = 64

# What parsing or wrapping a malformed item raises (JSONDecodeError and UnicodeDecodeError are
# ValueErrors; JSON nested a thousand deep raises RecursionError).
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


class UnreadableEnvelope(Exception):
    """A popped item parsed as JSON but could not become a message (raised by the channel's `Message`)."""

    def __init__(self, envelope: Any, problem: str) -> None:
        super().__init__(problem)
        self.envelope = envelope
        self.problem = problem


class BatchPopping(ChannelHooks):
    """Mixin for kombu's Redis channel: a batch pop sent ahead of each BRPOP (see the module doc)."""

    def start_pop(self, timeout: float | None = None) -> None:
        channel: Any = self
        waiting = self.full_backoff().remaining()
        if waiting > 0:  # Redis was full: wait, taking nothing, then try again
            # Sent raw, so with the channel's key prefix written here (a Redis user may be kept to it).
            start_wait(channel, f"{channel.global_keyprefix or ''}{channel.qos.unacked_index_key}.full-wait", waiting)
            self.__dict__["_wait_pending"] = True
            return
        try:
            with written_together(channel):  # batch pop, BRPOP and probe: one write
                self._send_pop(timeout)
        except channel.connection_errors:
            # The connection is dropped with whatever was sent on it: no reply is due.
            self.__dict__.pop("_batch_pending", None)
            self.__dict__.pop("_batch_tags", None)
            self.__dict__.pop("_probe_pending", None)
            self.__dict__.pop("_taking", None)  # a member written before the failure ages out (`task_client`)
            raise

    def _send_pop(self, timeout: float | None) -> None:
        channel: Any = self
        if channel.global_keyprefix:
            super().start_pop(timeout)  # kombu's BRPOP, its keys prefixed by the client (no batch pop then)
        else:
            queues = next_queues(channel)
            if not queues:
                return  # nothing to consume: kombu sends no BRPOP either
            keys, packed = self._pop_command(queues, brpop_timeout(channel, timeout))
            batch = self._batch_size()
            if batch > 0:
                qos = channel.qos
                bookkeeping = (qos.unacked_index_key, qos.unacked_key)
                # By its SHA once Redis has run it on this channel (its 1.8 kB text is hashed by Redis
                # on every EVAL); its reply is read before anything it pops is handed on, and a
                # NOSCRIPT refusal pops nothing (`_batch_read` sends the text again next time).
                script = (
                    ("EVALSHA", POP_AND_RECORD_SHA)
                    if self.__dict__.get("_pop_script_known")
                    else ("EVAL", POP_AND_RECORD)
                )
                tags = f"{self.next_delivery_tag()}:"  # the n-th item popped: tags + n
                command: tuple[Any, ...] = (*script, len(keys) + 2, *bookkeeping, *keys, batch, time.time(), tags)
                channel.client.connection.send_packed_command([pack_command(command)])
                self.__dict__["_batch_pending"] = True
                self.__dict__["_batch_tags"] = tags
            send_brpop(channel, packed)
        if self.records_at_pop() and polling(channel):
            # Run by Redis right after the BRPOP pops: was Redis full then? And, for a cancel looking
            # for a message: this BRPOP may hold one not yet recorded (`_recorded_pop`).
            taking = self._next_taking()
            probe: tuple[Any, ...] = ("EVAL", PROBE, 1, TAKING_KEY, taking, time.time())
            # Packed by hiredis as redis-py packs it, without redis-py's look at every argument in Python.
            channel.client.connection.send_packed_command([pack_command(probe)])
            self.__dict__["_probe_pending"] = True
            self.__dict__["_taking"] = taking

    def _pop_command(self, queues: list[str], timeout: float) -> tuple[list[str], list[bytes]]:
        """The lists a pop of `queues` (in this order) reads, in BRPOP's order (each queue's
        priority lists), and the packed BRPOP of them: built once per order of the queues (as many
        as there are queues, as the fair cycle rotates) instead of on every turn (measured: see
        the commit)."""
        channel: Any = self
        cache: dict[tuple[Any, ...], tuple[list[str], list[bytes]]] = self.__dict__.setdefault("_pop_commands", {})
        key = (*queues, timeout)
        command = cache.get(key)
        if command is None:
            if len(cache) >= _POP_COMMANDS_KEPT:  # queues added and cancelled over time
                cache.clear()
            keys = [priority_key(channel, queue, pri) for pri in channel.priority_steps for queue in queues]
            command = cache[key] = (keys, channel.client.connection.pack_command("BRPOP", *keys, timeout))
        return command

    def _next_taking(self) -> str:
        """A member of the taking set naming the next BRPOP of this channel (unique among all workers')."""
        count = self.__dict__["_takings"] = self.__dict__.get("_takings", 0) + 1
        name: str | None = self.__dict__.get("_taking_name")
        if name is None:
            name = self.__dict__["_taking_name"] = uuid.uuid4().hex
        return f"{name}:{count}"

    def next_delivery_tag(self) -> str:
        """A delivery tag for the next message this channel delivers, unique among all workers'
        (see the module doc)."""
        return unique_token()

    def claim_taking(self) -> str:
        """The taking member of the BRPOP whose message is being delivered now ("" if none): its
        unacked entry removes it (`_unacked`)."""
        taking: str = self.__dict__.pop("_taking", None) or ""
        return taking

    def taken_nothing(self, taking: str) -> None:
        """Remove the member `taking` of a BRPOP that recorded no message (the channel knows how)."""

    def _read_single(self, **options: Any) -> bool:
        """Read the pending BRPOP (and its probe) and deliver its item; its taking member is then
        gone from the channel: claimed by the item's unacked entry, or removed here."""
        try:
            self.__dict__["_popped_read"] = True  # what it pops is being delivered: a pop may go ahead
            take = _keep_at_close if closing(self) else self.take_popped
            delivered: bool = read_popped(self, take, self.read_probe, _keep_popped, **options)
        finally:
            self.__dict__["_popped_read"] = False
            taking = self.__dict__.pop("_taking", None)
            if taking:
                self.taken_nothing(taking)
        return delivered

    def records_at_pop(self) -> bool:
        """Whether this channel's pops record their messages as unacked (`_recorded_pop`)."""
        return False

    def read_probe(self) -> bool:
        """Read the reply of the `PROBE` sent behind the BRPOP, if one is due: whether Redis was full."""
        if not self.__dict__.pop("_probe_pending", False):
            return False
        client: Any = self.client
        try:
            reply = read_reply(client.connection)  # as parse_response reads an EVAL's (no callback)
        except redis.exceptions.ResponseError:  # the index of the wrong type, say: the record script tells
            return False
        return is_full(reply)

    def full_backoff(self) -> FullBackoff:
        """This channel's wait after a full Redis refused to let it take a message (`_recorded_pop`)."""
        backoff: FullBackoff | None = self.__dict__.get("_full_backoff")
        if backoff is None:
            backoff = self.__dict__["_full_backoff"] = FullBackoff()
        return backoff

    def refuse_envelope(self, envelope: Any, problem: str) -> None:
        """Report an envelope that never became a message (the channel says to whom)."""
        _dropped(problem)

    def take_popped(self, key: str, item: str, full: bool) -> bool:
        """Deliver a BRPOP's item; `full`: whether Redis was full right after the pop (`PROBE`)."""
        channel: Any = self
        queue = key.rsplit(channel.sep, 1)[0]
        rotate_queue(channel, queue)
        self.deliver_text(item, queue, recorded=False)
        return True

    def deliver_text(self, item: str, queue: str, recorded: bool, tag: str | None = None) -> None:
        """Parse a popped item and deliver it under delivery tag `tag` (the one its pop recorded it
        under), or a new one; while it is delivered, `popped_text` answers its text."""
        try:
            payload = envelope_of(item)
        except UNREADABLE:
            if recorded and tag:
                # Redis's Lua JSON reader takes what Python's refuses (0x10, +1, nan): its pop recorded
                # it, and the record would bring it back after every visibility timeout.
                self.drop_record(tag)
            raise
        retag(payload, tag or self.next_delivery_tag())
        self.__dict__["_popped"] = (payload, item)
        try:
            if recorded:
                self.deliver_recorded(payload, queue)
            else:
                deliver(self, payload, queue)
        finally:
            self.__dict__["_popped"] = None

    def drop_record(self, tag: str) -> None:
        """Remove the unacked record its pop wrote under `tag` for an item that is dropped (the channel knows how)."""

    def popped_text(self, payload: Any) -> str | None:
        """The JSON text `payload` was parsed from, while `deliver_text` delivers it (the envelope's
        nesting check counts its brackets first: `_message_checks.nesting_exceeds`); else None."""
        popped = self.__dict__.get("_popped")
        return popped[1] if popped is not None and popped[0] is payload else None

    def deliver_recorded(self, payload: Any, queue: str) -> None:
        """Deliver an item the pop script recorded as unacked already."""
        deliver(self, payload, queue)

    def _batch_size(self) -> int:
        """How many messages to pop ahead of the BRPOP: none unless a backlog is likely."""
        channel: Any = self
        qos = channel.qos
        room = qos.can_consume_max_estimate()
        if room is None or not channel.active_queues or channel.global_keyprefix:
            return 0
        if self.__dict__.get("_batch_refused", False):
            return 0
        # A lone caller waiting for each answer has one message in flight: a batch pop would only
        # cost it an extra wake-up of this thread (measured on threads: +0.2 ms a call). Two or more
        # in flight, or a last batch pop that found messages, mean that messages come faster than
        # they finish. (Three instead of two: p50 -2%, one-message throughput -4%, measured.)
        if qos.prefetch_count - room < 2 and not self.__dict__.get("_backlog", False):
            return 0
        # One place is left for the BRPOP's own message.
        return min(MAX_BATCH, int(room) - 1)

    def read_pop(self, **options: Any) -> bool:
        _delivering.append(self)
        try:
            return self._read_pop(**options)
        except self.connection_errors:  # type: ignore[attr-defined]
            if self.__dict__.pop("_ahead", None) is not None:  # lost with the connection, as any pending pop
                self.client.connection.disconnect()
            raise
        finally:
            _delivering.pop()
            self._install_pop_ahead()

    def _install_pop_ahead(self) -> None:
        """The read is over (or raised: a worker stopping, say): a pop written ahead is the channel's
        pending pop now, read, or ended by the channel's close, as any pending pop."""
        ahead = self.__dict__.pop("_ahead", None)
        if ahead is not None:
            pending, state = ahead
            set_pending_pop(self, pending)
            self.__dict__.update(state)

    def pop_ahead(self) -> None:
        """Write the next pop now, while the message this channel is delivering runs (see
        `pop_ahead`); it becomes the channel's pending pop once that delivery's read is over."""
        channel: Any = self
        if not self.__dict__.get("_popped_read") or "_ahead" in self.__dict__:
            return  # only once the BRPOP's reply is read, and once
        if not channel.qos.can_consume() or self.full_backoff().remaining() > 0:
            return  # no room with this message counted, or Redis was full: the loop's turn decides
        current = {key: self.__dict__.pop(key) for key in _POP_STATE if key in self.__dict__}
        reading = pending_pop(channel)
        try:
            self.start_pop(None)
            state = {key: self.__dict__.pop(key) for key in _POP_STATE if key in self.__dict__}
            self.__dict__["_ahead"] = (pending_pop(channel), state)
        except Exception as error:
            # Whatever was written goes with the connection; the loop's next turn reconnects and pops.
            for key in _POP_STATE:
                self.__dict__.pop(key, None)
            channel.client.connection.disconnect()
            logger.warning("the next pop could not be written ahead (%r); it is written on the next turn", error)
        finally:
            set_pending_pop(channel, reading)
            self.__dict__.update(current)

    def pop_in_flight(self) -> bool:
        return "_ahead" in self.__dict__

    def _read_pop(self, **options: Any) -> bool:
        if self.__dict__.pop("_wait_pending", False):
            # The wait's list is nobody's queue: whatever someone pushed there is dropped.
            read_popped(self, lambda key, item, behind: False, lambda: None, lambda key, item: None, **options)
            return False
        if not self.__dict__.pop("_batch_pending", False):
            try:
                delivered = self._read_single(**options)
            except self.connection_errors:  # type: ignore[attr-defined]
                self.__dict__.pop("_probe_pending", None)  # the connection is dropped with its reply
                self.client.connection.disconnect()
                raise
            except UnreadableEnvelope as unreadable:
                self.refuse_envelope(unreadable.envelope, unreadable.problem)
                return False
            except UNREADABLE as error:
                _dropped(error)
                return False
            except RecordRefused:
                self.full_backoff().refused(", ".join(self.active_queues))  # type: ignore[attr-defined]
                return False
            if delivered:
                # Calls run on the event loop finish before the next pop, so the count of calls in
                # flight never shows their backlog: every few single pops, a batch pop looks. (A
                # timing signal, a BRPOP answered at once, failed on a loaded machine.)
                singles = self.__dict__.get("_single_pops", 0) + 1
                self.__dict__["_single_pops"] = singles % PROBE_EVERY
                if singles == PROBE_EVERY:
                    self.__dict__["_backlog"] = True
            return delivered
        return self._batch_read(**options)

    def _batch_read(self, **options: Any) -> bool:
        """Deliver the batch pop's items; the BRPOP sent after it stays pending."""
        channel: Any = self
        client = channel.client
        try:
            popped = client.parse_response(client.connection, "EVAL", **options)
        except channel.connection_errors:
            client.connection.disconnect()
            stop_polling(channel)
            raise
        except redis.exceptions.NoScriptError:
            # Redis has forgotten the script (a restart, SCRIPT FLUSH): it popped nothing; its
            # text goes with the next batch pop.
            self.__dict__["_pop_script_known"] = False
            return self._read_behind(**options)
        except redis.exceptions.ResponseError as error:
            # Refused (an ACL without RPOP, say): the BRPOP behind it still works, one message at a time.
            logger.warning("the broker refused the batch pop (%s); taking one message per BRPOP", error)
            self.__dict__["_batch_refused"] = True
            return False
        self.__dict__["_pop_script_known"] = True
        if is_full(popped):  # nothing popped; the BRPOP behind it puts back what it takes
            self.__dict__["_backlog"] = False
            self.full_backoff().refused(", ".join(channel.active_queues))
            return self._read_behind(**options)
        self.__dict__["_backlog"] = bool(popped)
        tags = self.__dict__.pop("_batch_tags", "")
        delivered = False
        triples = list(zip(popped[::3], popped[1::3], popped[2::3], strict=True))

        def filed_as(number: int) -> str:
            return f"{tags}{number + 1}"  # the tag the script filed the item at `number` under (`POP_AND_RECORD`)

        for number, (key, item, recorded) in enumerate(triples):
            tag = filed_as(number)
            if closing(channel):
                _keep_at_close(bytes_to_str(key), bytes_to_str(item), tag=tag if recorded else None)  # type: ignore[no-untyped-call]
                continue
            try:
                queue = bytes_to_str(key).rsplit(channel.sep, 1)[0]  # type: ignore[no-untyped-call]
                rotate_queue(channel, queue)
                self.deliver_text(bytes_to_str(item), queue, bool(recorded), tag)  # type: ignore[no-untyped-call]
            except UnreadableEnvelope as unreadable:
                self.refuse_envelope(unreadable.envelope, unreadable.problem)
            except UNREADABLE as error:
                _dropped(error)
            except channel.connection_errors:
                # This one is kept by the QoS; the rest of the batch must not vanish with it, and each
                # one's record (filed by the pop) goes with its requeue, or the sweep pushes it again.
                for rest, (rest_key, rest_item, rest_recorded) in enumerate(triples[number + 1 :], number + 1):
                    rest_tag = filed_as(rest) if rest_recorded else None
                    unrecorded.keep(rest_tag, bytes_to_str(rest_key), bytes_to_str(rest_item))  # type: ignore[no-untyped-call]
                raise
            else:
                delivered = True
        if delivered:
            self.full_backoff().recorded()
        return self._read_behind(**options) or delivered

    def _read_behind(self, **options: Any) -> bool:
        """Read the reply of the BRPOP sent behind the batch pop, if it is already in."""
        channel: Any = self
        client = channel.client
        # The BRPOP's reply may have come in the same read and wait in the client's buffer, where
        # the event loop, watching the socket, would never see it: read it now.
        if client.connection.can_read(timeout=0):
            return self.read_pop(**options)
        return False

    def close(self) -> None:
        channel: Any = self
        if self.__dict__.get("_batch_pending") and polling(channel):
            # kombu's close reads the pending BRPOP's reply; the batch's comes first.
            self.read_pop()
        super().close()  # type: ignore[misc]


def envelope_of(item: str) -> Any:
    """A popped item parsed as kombu parses it. kombu's JSON calls a Python hook on every object to
    find its typed values; an item that cannot hold one is parsed as `json.loads` parses it, alike."""
    if may_hold_kombu_type(item):
        return loads(item)  # type: ignore[no-untyped-call]
    return json_value(item)


def retag(envelope: Any, tag: str) -> None:
    """Deliver `envelope` under the worker's delivery tag `tag` instead of its producer's (see the
    module doc); an envelope without a string tag is left as it is (its delivery refuses it)."""
    properties = envelope.get("properties") if isinstance(envelope, dict) else None
    if isinstance(properties, dict) and isinstance(properties.get("delivery_tag"), str):
        properties["delivery_tag"] = tag


def _keep_at_close(key: str, item: str, full: Any = None, *, tag: str | None = None) -> bool:
    """Keep an item popped by the pop kombu's `close` reads (a consumer restart after another of the
    connection's sockets failed: the BRPOP's own connection still works, and Redis may have popped a
    message into its reply meanwhile). Its consumers are going away and the unacked ledger is
    closed, so a delivery now would lose it; a working channel requeues it (`_unrecorded`), and a
    batch pop's record of it (filed under `tag`) goes with the requeue."""
    unrecorded.keep(tag, key, item)
    logger.warning(
        "kept a message popped while the broker channel closed; it is requeued (by the close, else on reconnection)"
    )
    return False


def _keep_popped(key: str, item: str) -> None:
    # Popped, its probe's reply lost with the connection: a working channel requeues it (`_unrecorded`).
    unrecorded.keep(None, key, item)


def _dropped(error: Exception | str) -> None:
    # A popped item is gone from Redis: nothing is left to requeue or redeliver.
    logger.error("dropped an item on a task queue that is not a Celery message envelope: %r", error)
