"""kombu's Redis channel and QoS: the private hooks and attributes the worker's transport uses.

`ChannelHooks` goes right before kombu's channel class in a channel's bases; it answers kombu's
private hooks by public-named methods (`start_pop`, `read_pop`, `create_client`,
`connection_params`) that the worker's mixins override and chain with `super()`, ending in kombu's own.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from kombu.message import Message
from kombu.serialization import SerializerRegistry, registry
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils import json as kombu_json
from kombu.utils.encoding import bytes_to_str
from redis.connection import AbstractConnection

from .replies import read_reply

RELIED_ON: tuple[tuple[type, str], ...] = (
    (kombu_redis.Channel, "_brpop_start"),
    (kombu_redis.Channel, "_brpop_read"),
    (kombu_redis.Channel, "_create_client"),
    (kombu_redis.Channel, "_connparams"),
    (kombu_redis.Channel, "_queue_cycle"),
    (kombu_redis.Channel, "_q_for_pri"),
    (kombu_redis.Channel, "_in_poll"),
    (kombu_redis.Channel, "_closing"),
    (kombu_redis.Channel, "_brpop_sent_at"),
    (kombu_redis.Channel, "_flush_brpop_reauth"),
    (AbstractConnection, "_sock"),
    (kombu_redis.Channel, "priority_steps"),
    (kombu_redis.Channel, "active_queues"),
    (kombu_redis.Channel, "conn_or_acquire"),
    (kombu_redis.Channel, "client"),
    (kombu_redis.Channel, "subclient"),
    (virtual.Transport, "_deliver"),
    (virtual.Message, "_raw"),
    (Message, "_decoded_cache"),
    (SerializerRegistry, "_decoders"),
    (virtual.Channel, "_lookup"),
    (virtual.Channel, "_get_message_priority"),
    (kombu_redis.Channel, "_do_restore_message"),
    (virtual.QoS, "_flush"),
    (virtual.QoS, "_delivered"),
    (kombu_redis.QoS, "_remove_from_indices"),
    # kombu's Redis QoS is no public API either: the methods the worker's QoS overrides, and its keys.
    *((kombu_redis.QoS, name) for name in ("append", "ack", "reject", "restore_visible", "restore_by_tag")),
    *((kombu_redis.QoS, name) for name in ("restore_unacked", "unacked_key", "unacked_index_key", "unacked_mutex_key")),
)


def computed_once(name: str) -> functools.cached_property[Any]:
    """kombu's cached property `name` of its Redis channel, read as a plain attribute once computed.

    kombu's `cached_property` is a data descriptor that takes a lock on every read; the channel's
    `client` is read about ten times a call (`client.add(4, 7)`: 47k such reads per 3k calls in
    the worker). Computed by kombu's own function, kept in the instance's `__dict__` where kombu
    looks for it (`_close_clients`) and from where it is dropped alike."""
    prop: Any = getattr(kombu_redis.Channel, name)
    return functools.cached_property(prop.func)


class ChannelHooks:
    """kombu's private hooks of its Redis channel, under public names (see the module doc)."""

    client = computed_once("client")
    subclient = computed_once("subclient")

    def _brpop_start(self, timeout: float | None = None) -> None:
        self.start_pop(timeout)

    def _brpop_read(self, **options: Any) -> bool:
        return self.read_pop(**options)

    def _create_client(self, asynchronous: bool = False) -> Any:
        return self.create_client(asynchronous)

    def _connparams(self, asynchronous: bool = False) -> Any:
        return self.connection_params(asynchronous)

    def pop_in_flight(self) -> bool:
        """Whether the next pop was already written while the current one is being read."""
        return False

    def start_pop(self, timeout: float | None = None) -> None:
        """Send the BRPOP for the next message (kombu's `_brpop_start`)."""
        super()._brpop_start(timeout)  # type: ignore[misc]

    def read_pop(self, **options: Any) -> bool:
        """Read the BRPOP's reply and deliver its message (kombu's `_brpop_read`)."""
        delivered: bool = super()._brpop_read(**options)  # type: ignore[misc]
        return delivered

    def create_client(self, asynchronous: bool = False) -> Any:
        """A redis-py client on this channel's pool (kombu's `_create_client`)."""
        return super()._create_client(asynchronous=asynchronous)  # type: ignore[misc]

    def connection_params(self, asynchronous: bool = False) -> Any:
        """The redis-py connection parameters of a new pool (kombu's `_connparams`)."""
        return super()._connparams(asynchronous)  # type: ignore[misc]


def next_queues(channel: Any) -> list[str]:
    """The active queues in the fair cycle's order, the cycle moved on as a BRPOP moves it."""
    queues: list[str] = channel._queue_cycle.consume(len(channel.active_queues))
    return queues


def rotate_queue(channel: Any, queue: str) -> None:
    """Move `queue` to the end of the fair cycle, as a message taken from it does."""
    channel._queue_cycle.rotate(queue)


def priority_key(channel: Any, queue: str, priority: int) -> str:
    """The Redis list that holds `queue`'s messages of `priority`."""
    key: str = channel._q_for_pri(queue, priority)
    return key


def polling(channel: Any) -> bool:
    """Whether a BRPOP of this channel is waiting for its reply."""
    return bool(channel._in_poll)


def closing(channel: Any) -> bool:
    """Whether the channel is closing (kombu's `close` then reads the pop still waiting for its reply)."""
    return bool(channel._closing)


def pop_client_address(channel: Any) -> str | None:
    """`host:port` of the connection a pending BRPOP waits on, as Redis's CLIENT LIST names its
    client; None when no BRPOP is pending or its socket is gone."""
    sock = getattr(channel._in_poll, "_sock", None) if channel._in_poll else None
    try:
        host, port = sock.getsockname()[:2] if sock is not None else (None, None)
    except OSError:
        return None
    if host is None:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # as Redis writes an IPv6 address


def pending_pop(channel: Any) -> tuple[Any, Any]:
    """The channel's pending BRPOP as kombu keeps it: its connection (or a false value) and when it was sent."""
    return channel._in_poll, getattr(channel, "_brpop_sent_at", None)


def set_pending_pop(channel: Any, pending: tuple[Any, Any]) -> None:
    """Make `pending` (from `pending_pop`) the channel's pending BRPOP."""
    channel._in_poll, channel._brpop_sent_at = pending


def stop_polling(channel: Any) -> None:
    """Forget the pending BRPOP (its connection was dropped)."""
    channel._in_poll = None


def deliver(channel: Any, payload: Any, queue: str) -> None:
    """Hand a decoded envelope taken from `queue` to the consumer, as kombu does a BRPOP's item."""
    channel.connection._deliver(payload, queue)


def raw_payload(message: Any) -> Any:
    """The envelope a kombu message was decoded from, as kombu stores it in the unacked record."""
    return message._raw


def preset_payload(message: Any, payload: Any) -> None:
    """Have `message.payload` (kombu's decoding of its body, cached on first use) answer `payload`."""
    message._decoded_cache = payload


def json_decoded_by_kombu() -> bool:
    """Whether kombu decodes application/json with its own JSON decoder (no other one registered)."""
    return registry._decoders.get("application/json") is kombu_json.loads


def bound_queues(channel: Any, exchange: str, routing_key: str) -> list[str]:
    """The queues a message published to `exchange` with `routing_key` goes to."""
    queues: list[str] = channel._lookup(exchange, routing_key)
    return queues


def message_priority(channel: Any, payload: Any) -> int:
    """The priority step of an envelope, as kombu files it."""
    priority: int = channel._get_message_priority(payload, reverse=False)
    return priority


def restore_message(channel: Any, entry: Any, pipe: Any, leftmost: bool) -> None:
    """Queue an unacked-record entry (`[message, exchange, routing key]`) again, in transaction `pipe`."""
    channel._do_restore_message(*entry, pipe, leftmost)


def remove_from_unacked(qos: Any, tag: str, pipe: Any) -> None:
    """Remove `tag` from the unacked index and hash, in `pipe`."""
    qos._remove_from_indices(tag, pipe)


def flush_settled(qos: Any) -> None:
    """Drop the messages already acknowledged or rejected from the QoS's delivered messages."""
    qos._flush()


def delivered_messages(qos: Any) -> dict[str, Any]:
    """The QoS's delivered, unsettled messages by delivery tag (kombu's own dict: clearing it clears them)."""
    delivered: dict[str, Any] = qos._delivered
    return delivered


def read_popped(
    channel: Any,
    take: Callable[[str, str, Any], bool],
    read_behind: Callable[[], Any],
    keep: Callable[[str, str], None],
    **options: Any,
) -> bool:
    """Read the pending BRPOP's reply, then `read_behind()` (the reply of what was sent behind it),
    and hand `(list key, item, that reply)` to `take`, which delivers it (kombu's `_brpop_read`,
    with `take` in place of its delivery); raise kombu's `Empty` on a timeout. An item popped
    whose `read_behind()` meets a connection error goes to `keep(list key, item)`, then the error
    is raised."""
    client = channel.client
    try:
        try:
            if options or channel.global_keyprefix:  # kombu's prefixing client takes the prefix off the key
                reply = client.parse_response(client.connection, "BRPOP", **options)
            else:  # only unpacked below: redis-py's BRPOP callback (a tuple of the list) is not needed
                reply = read_reply(client.connection)
        except channel.connection_errors:
            client.connection.disconnect()  # the next cycle reconnects
            raise
        try:
            behind = read_behind()
        except channel.connection_errors:
            if reply:  # gone from its list, delivered nowhere: it must not vanish with the connection
                keep(bytes_to_str(reply[0]), bytes_to_str(reply[1]))  # type: ignore[no-untyped-call]
            raise
        if not reply:
            raise virtual.Empty()
        key, item = reply
        return take(bytes_to_str(key), bytes_to_str(item), behind)  # type: ignore[no-untyped-call]
    finally:
        channel._in_poll = None
        if not channel.pop_in_flight():  # a pop written ahead (`_batch_pop`): no AUTH may go behind it
            channel._flush_brpop_reauth()


def send_brpop(channel: Any, packed: list[bytes]) -> None:
    """Send `packed`, a BRPOP of the channel's priority lists in the fair cycle's order, as the
    channel's pending BRPOP: kombu's `_brpop_start`, whose keys are built (12 `_q_for_pri` for 3
    queues) and packed anew on every turn; the caller keeps them (`_batch_pop`)."""
    connection = channel.client.connection
    channel._in_poll = connection
    channel._brpop_sent_at = time.monotonic()
    connection.send_packed_command(packed)


def brpop_timeout(channel: Any, timeout: float | None) -> float:
    """The timeout kombu's `_brpop_start` gives its BRPOP when it is given `timeout`."""
    seconds: float = channel.brpop_timeout if timeout is None else timeout
    return seconds or 0


def start_wait(channel: Any, key: str, timeout: float) -> None:
    """Send a BRPOP of `key` alone (a list nobody fills) as the channel's pending BRPOP: the event
    loop then wakes after `timeout` seconds, as after an empty wait for messages."""
    channel._in_poll = channel.client.connection
    channel._brpop_sent_at = time.monotonic()
    channel.client.connection.send_command("BRPOP", key, timeout)  # raw: `key` carries any key prefix


class written_together:
    """Commands sent on the channel's connection inside this block (the batch pop, kombu's BRPOP, the
    probe behind it) go in one write as it ends, even if it raises: one system call and one wake-up
    of Redis instead of one each. A failed write is raised there, as each send raised it. (A class,
    not a generator: it is entered on every turn of the event loop.)"""

    def __init__(self, channel: Any) -> None:
        self._connection = channel.client.connection
        self._packed: list[bytes | str] = []

    def collect(self, command: Any, check_health: bool = True) -> None:
        self._packed.extend([command] if isinstance(command, bytes | str) else command)

    def __enter__(self) -> None:
        self._connection.send_packed_command = self.collect  # kombu sends its BRPOP through this, on this instance

    def __exit__(self, *exc_info: object) -> None:
        connection = self._connection
        del connection.send_packed_command  # the class's own again
        if self._packed:
            chunks = [chunk.encode() if isinstance(chunk, str) else chunk for chunk in self._packed]
            connection.send_packed_command([b"".join(chunks)])
