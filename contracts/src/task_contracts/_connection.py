"""Where the broker and result backend are: one resolution rule for server and client."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ._errors import ContractError

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
BROKER_ENV = "TASK_BROKER_URL"
BACKEND_ENV = "TASK_RESULT_BACKEND"
SUPPORTED_SCHEMES = ("redis", "rediss")


class ConnectionConfigError(ContractError, ValueError):
    """Raised when a broker or result-backend URL cannot be used."""


@dataclass(frozen=True)
class ConnectionUrls:
    """Broker and result-backend URLs after resolution. `repr` never shows passwords."""

    broker_url: str
    result_backend: str

    def __repr__(self) -> str:
        return (
            f"ConnectionUrls(broker_url={redact_url(self.broker_url)!r}, "
            f"result_backend={redact_url(self.result_backend)!r})"
        )


def resolve_urls(
    broker_url: str | None = None,
    result_backend: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectionUrls:
    """Argument first, then `TASK_BROKER_URL` / `TASK_RESULT_BACKEND`, then the defaults.

    The result backend defaults to the broker URL.
    """
    env = os.environ if environ is None else environ
    broker = broker_url or env.get(BROKER_ENV) or DEFAULT_BROKER_URL
    backend = result_backend or env.get(BACKEND_ENV) or broker
    for role, url in (("broker", broker), ("result backend", backend)):
        scheme = urlsplit(url).scheme
        if scheme not in SUPPORTED_SCHEMES:
            raise ConnectionConfigError(
                f"{role} URL {redact_url(url)!r} has scheme {scheme!r}; supported: {', '.join(SUPPORTED_SCHEMES)}"
            )
    return ConnectionUrls(broker, backend)


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, safe for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
