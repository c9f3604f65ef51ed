"""Publishing on a plain `redis://` broker: the protocol-v2 envelope `send_task` would put on the
queue's list, built here and LPUSHed directly.

Hot path (measured): `send_task` through kombu costs ~220-320 µs of CPU per call, about eight times
the LPUSH that carries it, spent in routing, message objects and serialisation layers. The envelope
built here is the very same (`tests/wire/test_golden.py` compares it with the recorded one); TLS,
Sentinel and RabbitMQ brokers keep `send_task`.
"""

from __future__ import annotations

import base64
import json
import json.encoder
import time
from binascii import b2a_base64
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

import redis
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from redis.backoff import NoBackoff
from redis.retry import Retry

from task_contracts.wire import CANCEL_HASH_HEADER, DEFERRED_KEY, SHAPE_HEADER, TAKING_KEY

from ._ids import MadeAhead, new_id
from ._pools import BoundedPool

if TYPE_CHECKING:
    from ._producer import Outgoing
    from ._settings import ClientSettings

#: Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize`: the repr shown by monitors is cut here.
_REPR_MAXSIZE = 1024
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
#: The headers every envelope has; a message header of the same name takes its place (`EnvelopeBuilder.build`).
_STANDARD_HEADERS = frozenset(
    (
        "lang",
        "task",
        "id",
        "shadow",
        "eta",
        "expires",
        "group",
        "group_index",
        "retries",
        "timelimit",
        "root_id",
        "parent_id",
        "argsrepr",
        "kwargsrepr",
        "origin",
        "ignore_result",
        "replaced_task_nesting",
        "stamped_headers",
        "stamps",
    )
)
#: The headers a call of this client carries (`_runtime`): none is a standard one, each a str.
_CALL_HEADERS = frozenset((SHAPE_HEADER, CANCEL_HASH_HEADER))
#: kombu's Redis priority lists beside a queue's own (steps 3, 6, 9) and its unacked hash.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_UNACKED = "unacked"
#: Messages read per queue when looking for one id; a longer queue cannot be searched.
_SEARCH_LIMIT = 100_000
_SEARCH_PAGE = 1_000
#: A search waits at most this long (seconds) for workers to record messages their BRPOPs have just
#: taken (a few hundred microseconds, normally). A member's score is the time its BRPOP was sent, by
#: the worker's clock (an idle BRPOP waits up to 1 s); one older than `_TAKING_STALE` (by Redis's
#: clock) is taken for a lost worker's.
_TAKING_WAIT = 2.0
_TAKING_STALE = 5.0
_TAKING_POLL = 0.005


def _string(text: str) -> str:
    """A string as `json.dumps` writes it (ASCII, quoted)."""
    return encode_basestring_ascii(text)


_DEFAULT = json.JSONEncoder().default
# The C encoder `json.dumps` ends in (None without the C accelerator); not in typeshed.
_C_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)


def _dumps(value: Any) -> str:
    """`json.dumps(value)` with its defaults, character for character (and the same errors), through
    the C encoder it ends in, without the Python layers before it: measured in a sequential caller
    (cold), the body's 9 -> 4 us."""
    if _C_ENCODER is None:
        return json.dumps(value)
    # A new encoder per value: its markers (circular references) are its own, as in `json.dumps`.
    encode = _C_ENCODER({}, _DEFAULT, encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return "".join(encode(value, 0))


def _short_repr(value: Any) -> str:
    # The builtin repr matches Celery's saferepr for the JSON values a call carries and is many
    # times faster; a long one is cut by saferepr as Celery would.
    text = repr(value)
    return text if len(text) <= _REPR_MAXSIZE else saferepr(value, _REPR_MAXSIZE)


class EnvelopeBuilder:
    """Envelopes of one producer: its origin as Celery's app would give it, and its reply channel."""

    def __init__(self, reply_to: str) -> None:
        self.origin = anon_nodename()
        self.reply_to = reply_to
        # The envelope's text around the fields that change per call (see `build`).
        self._origin_text, self._reply_to_text = _string(self.origin), _string(reply_to)
        # The next envelope's delivery tag, made after an LPUSH is written (`make_spare`): off the
        # next call's path. A forked child never uses its parent's (kombu keys its unacked hash by them).
        self._delivery_tags = MadeAhead(new_id)
        # The last contract shape written, and its text (`_headers_text`).
        self._shape: tuple[Any, str] = (None, "null")

    def make_spare(self) -> None:
        """Make the next envelope's delivery tag now (after an LPUSH is written: off the next call's path)."""
        self._delivery_tags.prepare()

    def parts(self, message: Outgoing) -> tuple[bytes, dict[str, Any]]:
        """The message's body (JSON `[args, kwargs, embed]`) and headers, as `send_task` writes them."""
        args, kwargs = list(message.args), dict(message.kwargs)
        body = _dumps([args, kwargs, _EMBED]).encode()
        task_id = message.task_id
        headers = {
            "lang": "py",
            "task": message.name,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [message.time_limit, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": _short_repr(args),
            "kwargsrepr": _short_repr(kwargs),
            "origin": self.origin,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
            **message.headers,
        }
        return body, headers

    def fields(self, message: Outgoing, delivery_tag: str) -> dict[str, Any]:
        """The whole envelope as kombu's Redis transport puts it on a list (body in base64)."""
        body, headers = self.parts(message)
        return {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "correlation_id": message.task_id,
                "reply_to": self.reply_to,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": message.queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": delivery_tag,
            },
        }

    def build(self, message: Outgoing) -> str:
        """`json.dumps(self.fields(message, new_id()))`, character for character.

        Hot path (measured): the fixed text between the fields is written out, not encoded per call:
        13-15 -> 8.5 µs per envelope (tests/client/test_envelope.py compares the two).
        """
        delivery_tag = self._delivery_tags.take()
        extra = message.headers
        if not extra.keys() <= _CALL_HEADERS and (
            not _STANDARD_HEADERS.isdisjoint(extra) or not all(type(key) is str for key in extra)
        ):
            return json.dumps(self.fields(message, delivery_tag))  # a header replacing a standard one
        args, kwargs = list(message.args), dict(message.kwargs)
        body = b2a_base64(_dumps([args, kwargs, _EMBED]).encode(), newline=False).decode()
        time_limit = message.time_limit
        task_id = _string(message.task_id)
        return "".join(
            (
                '{"body": "',
                body,
                '", "content-encoding": "utf-8", "content-type": "application/json", '
                '"headers": {"lang": "py", "task": ',
                _string(message.name),
                ', "id": ',
                task_id,
                ', "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, '
                '"timelimit": [',
                "null" if time_limit is None else json.dumps(time_limit),
                ', null], "root_id": ',
                task_id,
                ', "parent_id": null, "argsrepr": ',
                _string(_short_repr(args)),
                ', "kwargsrepr": ',
                _string(_short_repr(kwargs)),
                ', "origin": ',
                self._origin_text,
                ', "ignore_result": null, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}',
                self._headers_text(extra),
                '}, "properties": {"correlation_id": ',
                task_id,
                ', "reply_to": ',
                self._reply_to_text,
                ', "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": ',
                _string(message.queue),
                '}, "priority": 0, "body_encoding": "base64", "delivery_tag": "',
                delivery_tag,
                '"}}',
            )
        )

    def _headers_text(self, headers: Mapping[str, Any]) -> str:
        """The message's own headers as `json.dumps` writes a dict's items, each after ", " ("" for none).

        Hot path (measured): a call's headers (`_CALL_HEADERS`) are written one by one, and its
        contract's shape, the same object in every call of the contract (`Contract.shape`, never
        changed), is encoded once, not per call: the envelope's headers 4.3 -> ~1 us (cold).
        """
        if not headers.keys() <= _CALL_HEADERS:
            text = _dumps(headers if type(headers) is dict else dict(headers))
            return "" if text == "{}" else ", " + text[1:-1]
        parts = []
        shape, shape_text = self._shape  # one read: another thread may replace it meanwhile
        for name, value in headers.items():
            if type(value) is str:
                value_text = _string(value)
            elif value is shape:
                value_text = shape_text
            else:
                value_text = _dumps(value)
                if name == SHAPE_HEADER:
                    self._shape = (value, value_text)  # held: no other object can take its id meanwhile
            parts.append(", " + _string(name) + ": " + value_text)
        return "".join(parts)


def _names(envelope: bytes | str, needle: bytes) -> bool:
    """Whether a queued envelope names the id: in its headers, or inside its body (base64 on Redis),
    where the later links of a chain and the calls of a chunk travel."""
    envelope = envelope if isinstance(envelope, bytes) else envelope.encode()
    if needle in envelope:
        return True
    try:
        message = json.loads(envelope)
        if isinstance(message, list):  # an unacked entry: [message, exchange, routing key]
            message = message[0]
        body = message.get("body", "")
        return needle in (base64.b64decode(body) if isinstance(body, str) else b"")
    except (ValueError, AttributeError, TypeError, IndexError):
        return False  # not an envelope: not this id


class DirectPublisher:
    """LPUSHes envelopes on one redis-py connection pool (`BoundedPool`); every failure is a redis-py error.

    No retries here (redis-py would retry a timeout three times): the producer decides, as for
    `send_task`.
    """

    def __init__(self, url: str, settings: ClientSettings, pipeline_size: int, reply_to: str) -> None:
        pool = BoundedPool.from_url(
            url,
            socket_connect_timeout=settings.connect_timeout,
            socket_timeout=settings.socket_timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=settings.max_connections,
            timeout=settings.pool_timeout,
        )
        self._redis = redis.Redis.from_pool(pool)
        self._envelopes = EnvelopeBuilder(reply_to)
        self._pipeline_size = pipeline_size

    def publish(self, message: Outgoing) -> None:
        self._redis.lpush(message.queue, self._envelopes.build(message))

    def push(self, message: Outgoing) -> PendingPush:
        """Write the LPUSH and return without its reply (`PendingPush.confirm` reads it).

        A lone caller then sleeps once, until its record comes, instead of also waking for the
        broker's "1" while the worker runs its call (measured: 5-8% of `client.add(4, 7)`'s round trip);
        a "1" already there when it starts waiting is read then (`arrived`).
        """
        envelope = self._envelopes.build(message)  # before any I/O: an unencodable call publishes nothing
        pool = self._redis.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_command("LPUSH", message.queue, envelope)  # type: ignore[no-untyped-call]
        except BaseException:
            pool.release(connection)  # redis-py disconnected it if the write failed
            raise
        self._envelopes.make_spare()  # while Redis and the worker take the message
        return PendingPush(pool, connection)

    def publish_many(self, messages: Sequence[Outgoing]) -> None:
        """Pipelined, `pipeline_size` commands per round trip (bounded client memory)."""
        build = self._envelopes.build
        for start in range(0, len(messages), self._pipeline_size):
            pipe = self._redis.pipeline(transaction=False)
            for message in messages[start : start + self._pipeline_size]:
                pipe.lpush(message.queue, build(message))
            pipe.execute()

    def find(self, task_id: str, queues: Sequence[str]) -> bool | None:
        """Whether an envelope naming `task_id` is on one of `queues` or in the unacked hash; None
        if one of them is longer than `_SEARCH_LIMIT`. Read in pages: Redis is never blocked long."""
        try:
            return self._find(task_id.encode(), queues)
        except redis.exceptions.NoPermissionError:
            # A least-privilege client (docs: no LRANGE, HSCAN or unacked*) cannot look: cannot tell.
            return None

    def _find(self, needle: bytes, queues: Sequence[str]) -> bool | None:
        """The places a message moves through, each read after the one it may have come from: the
        deferred set (a call due far ahead goes back to its queue from there), the queues, the
        workers' BRPOPs not yet recorded (`wire.TAKING_KEY`), the unacked hash, the deferred set again
        (a held call goes there from the unacked hash). Each move between them is one atomic step,
        except BRPOP's: a message it took is named by its BRPOP's member until its unacked entry is
        written, so a member seen then is waited for, and the unacked hash read again."""
        found = self._find_deferred(needle)
        if found is not False:
            return found
        # The id is in any producer's envelope: its id, correlation id or root id.
        lists = [queue + suffix for queue in dict.fromkeys(queues) for suffix in _PRIORITY_SUFFIXES]
        for key in lists:
            length = self._redis.llen(key)
            if length > _SEARCH_LIMIT:
                return None
            for start in range(0, length, _SEARCH_PAGE):
                if any(_names(item, needle) for item in self._redis.lrange(key, start, start + _SEARCH_PAGE - 1)):
                    return True
        taking = self._taking()
        found = self._find_unacked(needle)
        if found is False:
            found = self._find_deferred(needle)
        if found is not False or not taking:
            return found
        if not self._taken(taking):
            return None  # a worker keeps a message it popped unrecorded (frozen?): cannot tell
        found = self._find_unacked(needle)
        return found if found is not False else self._find_deferred(needle)

    def _find_unacked(self, needle: bytes) -> bool | None:
        for seen, (_tag, value) in enumerate(self._redis.hscan_iter(_UNACKED, count=_SEARCH_PAGE)):
            if _names(value, needle):
                return True
            if seen >= _SEARCH_LIMIT:
                return None
        return False

    def _find_deferred(self, needle: bytes) -> bool | None:
        length = self._redis.zcard(DEFERRED_KEY)
        if length > _SEARCH_LIMIT:
            return None
        for start in range(0, length, _SEARCH_PAGE):
            page: list[Any] = list(self._redis.zrange(DEFERRED_KEY, start, start + _SEARCH_PAGE - 1))
            if any(_names(member, needle) for member in page):  # `[queue, envelope]`
                return True
        return False

    def _taking(self) -> list[Any]:
        """The members of the BRPOPs that have popped and not yet recorded (a lost worker's, once
        older than `_TAKING_STALE`, are left out)."""
        seconds, microseconds = self._redis.time()
        oldest = seconds + microseconds / 1e6 - _TAKING_STALE
        return list(self._redis.zrangebyscore(TAKING_KEY, oldest, "+inf"))

    def _taken(self, members: list[Any]) -> bool:
        """Wait (at most `_TAKING_WAIT`) until `members` are gone: their messages recorded or none popped."""
        deadline = time.monotonic() + _TAKING_WAIT
        while True:
            scores = self._redis.zmscore(TAKING_KEY, members)
            members = [member for member, score in zip(members, scores, strict=True) if score is not None]
            if not members:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_TAKING_POLL)

    def close(self) -> None:
        self._redis.close()


class PendingPush:
    """An LPUSH written whose reply is still unread: its connection stays out of the pool until read."""

    __slots__ = ("_connection", "_pool")

    def __init__(self, pool: Any, connection: Any) -> None:
        self._pool = pool
        self._connection = connection

    def arrived(self) -> bool:
        """Whether the reply can be read without waiting: it has come, or the connection failed
        (`confirm` then raises at once). Never waits (one poll of the socket)."""
        connection = self._connection
        if connection is None:
            return True
        try:
            return bool(connection.can_read())
        except BaseException:  # the server closed it, or the poll failed: `confirm` tells which
            return True

    def confirm(self) -> None:
        """Read the reply (bounded by the socket timeout) and give the connection back; raise the
        redis-py error the LPUSH met (a refusal, a lost or frozen connection)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.read_response()
        except BaseException:
            connection.disconnect()  # whatever it still holds must not reach the next user
            raise
        finally:
            self._pool.release(connection)

    def discard(self) -> None:
        """Give the connection back unread (disconnected: its reply must not reach the next user)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            self._pool.release(connection)
