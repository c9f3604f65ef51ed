"""`task-server dev`: an embedded Redis for one development session, removed with its data afterwards."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from ._errors import EmbeddedRedisError, PortTaken
from .testing import ProcessError, RedisProcess, free_port, port_is_free

#: The client's default broker port: when it is free, clients need no variable set at all.
DEFAULT_DEV_PORT = 6379


def choose_port(requested: int) -> int:
    """`requested` if free; 0, or the default port when it is taken, gives a free one; another
    port that is taken raises `PortTaken`."""
    if requested == 0 or (requested == DEFAULT_DEV_PORT and not port_is_free(requested)):
        return free_port()
    if not port_is_free(requested):
        raise PortTaken(
            f"port {requested} on 127.0.0.1 is taken (another Redis?); the dev worker would consume its "
            "queues: choose another port, or --port 0 for a free one"
        )
    return requested


@contextmanager
def embedded_redis(port: int) -> Iterator[RedisProcess]:
    """A `redis-server` on 127.0.0.1:`port` in a temporary directory; stopped and removed on exit.

    Raises `EmbeddedRedisError` if no `redis-server` is found, or if the server answering on the
    port is not the one started here (the port was taken in the meantime).
    """
    with (
        tempfile.TemporaryDirectory(prefix="task-server-dev-") as workdir,
        RedisProcess(port, workdir=workdir) as server,
    ):
        try:
            server.start()
        except ProcessError as error:
            # The error already says how to get a redis-server when none is found: no hint of our own.
            raise EmbeddedRedisError(f"cannot start the embedded Redis: {error}") from None
        if _answering_pid(server.url) != server.pid:
            raise PortTaken(f"another server answers on 127.0.0.1:{port}; the dev worker never joins it")
        yield server


def _answering_pid(url: str) -> int | None:
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        try:
            return int(client.info("server")["process_id"])
        except (redis.RedisError, KeyError, ValueError):
            return None
