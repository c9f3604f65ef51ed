"""Client settings: one frozen object, resolved once in the constructor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from task_contracts import ConnectionUrls


@dataclass(frozen=True)
class ClientSettings:
    """Connection URLs and the bounds on every network wait.

    `connect_timeout` bounds opening a connection (an unroutable broker); `socket_timeout`
    bounds each reply (a frozen broker: connections accepted, nothing answers);
    `publish_retries` is how many more times a publish refused or reset by the broker is tried
    on a fresh connection (a timeout is never retried). With the defaults a publish to a refused
    broker fails in about 0.1 s, to an unroutable one in `connect_timeout` (1 s), to a frozen
    one in `socket_timeout` (2 s); a result read from a lost backend in at most
    `connect_timeout + socket_timeout`.

    `max_connections` caps each of the client's Redis connection pools (the direct publisher's, the
    result listener's, the workflow backend's). A caller finding all of them busy waits up to
    `pool_timeout` for one, then gets `BrokerUnavailable` naming the limit.

    `cancel_secret` makes each call's cancel token (see docs/security.md): only a client holding the
    same secret can cancel the call; by default a random one per client. `verify_key_file` names
    the workers' Ed25519 public key (PEM; several keys may follow one another in the file): records
    not signed by one of them are then refused.
    """

    urls: ConnectionUrls
    connect_timeout: float = 1.0
    socket_timeout: float = 2.0
    publish_retries: int = 1
    max_connections: int = 100  # per pool; redis-py's own default ceiling
    tracing: bool = False  # OpenTelemetry trace context on every message (needs task-client[otel])
    cancel_secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    verify_key_file: str | None = None  # None: records are not checked for a worker's signature

    def __post_init__(self) -> None:
        # Zero or negative bounds would mean "wait forever" to redis-py: refuse them here.
        for name in ("connect_timeout", "socket_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)!r}")
        if len(self.cancel_secret) < 16:
            raise ValueError("cancel_secret must be at least 16 bytes")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be 1 or more, got {self.max_connections!r}")
        if self.publish_retries < 0:
            raise ValueError(f"publish_retries must be 0 or more, got {self.publish_retries!r}")

    @property
    def pool_timeout(self) -> float:
        """Seconds a caller waits for a pooled connection: as long as one command on it may take
        (opening the connection, then one reply), so a busy pool fails no sooner than a slow one."""
        return self.connect_timeout + self.socket_timeout
