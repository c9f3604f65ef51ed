"""redis-py's reading of one reply, without its wrapping per call, on the worker's busiest connections.

Every call the worker serves reads five replies (the BRPOP's and its probe's, the unacked entry's
and the admission's, the record's). redis-py's `Redis.parse_response` and `Connection.read_response`
wrap the hiredis reader that parses them in Python steps (a host string formatted, option and
callback look-ups, health-check bookkeeping): several times the reader's own work per reply.
`read_reply` takes the reply from that same reader, fed by redis-py's own socket read, and
does what redis-py does with it: the same value, the same error raised, the connection dropped on
a failed read as redis-py drops it.
"""

from __future__ import annotations

import builtins
import time
from typing import Any

import hiredis
from redis.connection import AbstractConnection, DefaultParser
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

RELIED_ON: tuple[tuple[type, str], ...] = (
    (AbstractConnection, "_parser"),
    (AbstractConnection, "_host_error"),  # the host it names in a read's error, as redis-py names it
    (DefaultParser, "_reader"),
    # Public names of the parser, itself no public API: its socket read and its handling of a push.
    (DefaultParser, "read_from_socket"),
    (DefaultParser, "handle_push_response"),
)

#: What a whole, ordinary reply is read as: handed on as it is (a list's first item checked, below).
_PLAIN = frozenset({bytes, str, int, list, type(None)})


def read_reply(connection: Any) -> Any:
    """`connection.read_response()`: the next reply, or the error redis-py raises for it."""
    parser = connection._parser
    reader = getattr(parser, "_reader", None)
    if reader is None or reply_held(parser):  # another parser, not connected, or a reply held: redis-py's way
        return connection.read_response()
    try:
        reply = reader.gets()
        while True:
            if type(reply) in _PLAIN:
                if type(reply) is list and reply and isinstance(reply[0], ConnectionError):
                    raise reply[0]  # as redis-py's parser raises it
                break
            if type(reply) is object:  # redis-py's "not enough data" mark: read on
                parser.read_from_socket()
            elif isinstance(reply, ConnectionError):
                raise reply
            elif isinstance(reply, hiredis.PushNotification):
                parser.handle_push_response(reply)  # as redis-py handles one met while reading a reply
            else:
                break  # an error reply, or a RESP3 type (map, set, double, boolean): as redis-py returns it
            reply = reader.gets()
    except builtins.TimeoutError:
        connection.disconnect()
        raise TimeoutError(f"Timeout reading from {connection._host_error()}") from None
    except OSError as error:
        connection.disconnect()
        raise ConnectionError(f"Error while reading from {connection._host_error()} : {error.args}") from None
    except BaseException:
        connection.disconnect()
        raise
    interval = connection.health_check_interval
    if interval:
        connection.next_health_check = time.monotonic() + interval
    if isinstance(reply, ResponseError):
        raise reply
    return reply


_ABSENT = object()


def reply_held(parser: Any) -> bool:
    """Whether redis-py before 7 holds a reply its `can_read` took from the reader (its parser's
    `_next_response`, absent from later versions, so looked up by name and not in `RELIED_ON`):
    that reply comes first, and redis-py's read hands it on."""
    held = getattr(parser, "_next_response", _ABSENT)
    return held is not _ABSENT and type(held) is not object  # `object()` is its "none held" mark
