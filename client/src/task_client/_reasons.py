"""Why a connection failed, in words a caller can act on, with no password in them."""

from __future__ import annotations

import concurrent.futures
import socket
from urllib.parse import urlsplit

import redis.exceptions
from amqp.exceptions import MessageNacked

from ._settings import ClientSettings

_TIMEOUTS = (TimeoutError, socket.timeout, concurrent.futures.TimeoutError, redis.exceptions.TimeoutError)


def connection_failure(error: BaseException | None, settings: ClientSettings) -> str:
    """A one-line reason for `error`: which bound ran out, or the library's own words, passwords removed."""
    if error is None:
        return "connection lost"
    if isinstance(error, MessageNacked):  # py-amqp raises it with no words of its own
        return "RabbitMQ refused the message (basic.nack; e.g. a full queue that rejects publishes)"
    text = _scrub(str(error) or type(error).__name__, settings)
    if not is_timeout(error):
        return text
    if "connect" in text.lower():
        return f"could not connect within {settings.connect_timeout:g} s ({text})"
    # A frozen server accepts connections and never answers; only the socket timeout catches it.
    return f"no reply within {settings.socket_timeout:g} s ({text})"


def is_timeout(error: BaseException) -> bool:
    """True when `error`, or an error it wraps, is a timeout rather than a refusal."""
    seen: BaseException | None = error
    for _ in range(5):  # kombu wraps redis errors in its own; look a few links down the chain
        if seen is None:
            return False
        if isinstance(seen, _TIMEOUTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _scrub(text: str, settings: ClientSettings) -> str:
    for url in (settings.urls.broker_url, settings.urls.result_backend):
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "***")
    return text
