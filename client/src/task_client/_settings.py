"""Client settings: one frozen object, resolved once in the constructor."""

from __future__ import annotations

from dataclasses import dataclass

from task_contracts import ConnectionUrls


@dataclass(frozen=True)
class ClientSettings:
    """Connection URLs and the bounds on every network wait.

    `connect_timeout` bounds opening a connection (a refused or unroutable broker);
    `socket_timeout` bounds each reply (a frozen broker); `publish_retries` is how many
    times a failed publish is retried before `BrokerUnavailable`. With the defaults a refused
    broker fails in well under 2 s and a frozen one in about
    `(publish_retries + 1) * socket_timeout` = 4 s.
    """

    urls: ConnectionUrls
    connect_timeout: float = 1.0
    socket_timeout: float = 2.0
    publish_retries: int = 1

    def __post_init__(self) -> None:
        # Zero or negative bounds would mean "wait forever" to redis-py: refuse them here.
        for name in ("connect_timeout", "socket_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)!r}")
        if self.publish_retries < 0:
            raise ValueError(f"publish_retries must be 0 or more, got {self.publish_retries!r}")
