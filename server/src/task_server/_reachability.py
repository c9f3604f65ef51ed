"""One look at the broker before the worker starts: Celery's own retry lines come after its banner,
one per attempt, so an operator whose Redis is missing would otherwise have to dig for the URL."""

from __future__ import annotations

import redis

#: Bound of the look, so that a frozen Redis delays the start by at most this long.
PROBE_TIMEOUT = 2.0


def unreachable_reason(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the Redis at `url` does not answer a PING, or None when it does (or the URL is for Celery only)."""
    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except (ValueError, TypeError):  # an option only kombu understands: leave the verdict to Celery
        return None
    try:
        connection.ping()
    except (redis.RedisError, OSError) as error:
        return str(error) or type(error).__name__
    finally:
        connection.close()
    return None
