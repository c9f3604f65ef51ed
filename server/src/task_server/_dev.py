"""`task-server dev`: an embedded Redis for one development session, removed with its data afterwards."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .testing import RedisProcess, free_port

#: The client's default broker port: when it is free, clients need no variable set at all.
DEFAULT_DEV_PORT = 6379


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def choose_port(requested: int) -> int:
    """`requested`; 0, or the default port when it is taken, gives a free one."""
    if requested == 0 or (requested == DEFAULT_DEV_PORT and not port_is_free(requested)):
        return free_port()
    return requested


@contextmanager
def embedded_redis(port: int) -> Iterator[RedisProcess]:
    """A `redis-server` on 127.0.0.1:`port` in a temporary directory; stopped and removed on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="task-server-dev-") as workdir,
        RedisProcess(port, workdir=workdir) as redis,
    ):
        redis.start()
        yield redis
