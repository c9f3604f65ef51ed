"""Client settings: one frozen object, resolved once in the constructor."""

from __future__ import annotations

from dataclasses import dataclass

from task_contracts import ConnectionUrls


@dataclass(frozen=True)
class ClientSettings:
    """Connection URLs and the bounds on every network wait.

    `connect_timeout` bounds opening a connection (a refused or unroutable broker);
    `socket_timeout` bounds each reply (a frozen broker); `publish_retries` is how many
    times a failed publish is retried before `BrokerUnavailable`.
    """

    urls: ConnectionUrls
    connect_timeout: float = 1.0
    socket_timeout: float = 2.0
    publish_retries: int = 1
