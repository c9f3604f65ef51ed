"""Where the broker and result backend are: one resolution rule for server and client.

Brokers: Redis (`redis://`, `rediss://`), Redis behind Sentinel (`sentinel://`) and RabbitMQ
(`amqp://`, `amqps://`). Result backends: Redis only (`redis://`, `rediss://`, `sentinel://`), since
results are read by key and published on a channel, which RabbitMQ does not do.

A Sentinel URL names every sentinel, as kombu and Celery spell it, and the master's name:
`sentinel://[:password@]host1:26379;sentinel://host2:26379;sentinel://host3:26379/0?master_name=mymaster`.
The database and the master's password come from the first sentinel's part; `master_name` may
follow any part.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ._errors import ContractError

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
BROKER_ENV = "TASK_BROKER_URL"
BACKEND_ENV = "TASK_RESULT_BACKEND"
REDIS_SCHEMES = ("redis", "rediss", "sentinel")
AMQP_SCHEMES = ("amqp", "amqps")
SUPPORTED_SCHEMES = (*REDIS_SCHEMES, *AMQP_SCHEMES)
_SENTINEL_SEPARATOR = ";"
#: The query options a Redis URL may carry: those Celery's Redis backend and kombu's Redis transport
#: hand to redis-py (its `URL_QUERY_ARGUMENT_PARSERS` and connection arguments). Any other name
#: reached redis-py as an unexpected keyword at the first call, or crashed the worker.
_REDIS_SSL_OPTIONS = frozenset(
    {
        "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname", "ssl_ca_path",
        "ssl_ca_data", "ssl_password", "ssl_min_version", "ssl_ciphers", "ssl_include_verify_flags",
        "ssl_exclude_verify_flags",
    }
)  # fmt: skip
REDIS_QUERY_OPTIONS = _REDIS_SSL_OPTIONS | {
    "db", "virtual_host", "client_name", "credential_provider", "health_check_interval", "max_connections",
    "protocol", "retry_on_error", "retry_on_timeout", "socket_connect_timeout", "socket_keepalive",
    "socket_read_size", "socket_timeout", "timeout", "master_name",
}  # fmt: skip
_DEFAULT_SENTINEL_PORT = 26379


class ConnectionConfigError(ContractError, ValueError):
    """Raised when a broker or result-backend URL cannot be used."""


@dataclass(frozen=True)
class SentinelAddress:
    """What a `sentinel://` URL names: the sentinels to ask, the master's name, and how to use it."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CeleryUrl:
    """A URL as Celery and kombu take it, with the transport options it implies (Sentinel's master)."""

    url: str = field(repr=False)
    transport_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionUrls:
    """Broker and result-backend URLs after resolution. `repr` never shows passwords."""

    broker_url: str
    result_backend: str

    @property
    def broker_is_amqp(self) -> bool:
        """True for RabbitMQ (`amqp://`, `amqps://`), False for Redis and Sentinel."""
        return scheme_of(self.broker_url) in AMQP_SCHEMES

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

    The result backend defaults to the broker URL when the broker is Redis; a RabbitMQ broker
    needs a Redis result backend named explicitly.
    """
    env = os.environ if environ is None else environ
    broker = broker_url or env.get(BROKER_ENV) or DEFAULT_BROKER_URL
    _check_scheme("broker", broker, SUPPORTED_SCHEMES)
    backend = result_backend or env.get(BACKEND_ENV)
    if not backend:
        if scheme_of(broker) in AMQP_SCHEMES:
            raise ConnectionConfigError(
                f"broker URL {redact_url(broker)!r} is RabbitMQ, which cannot hold results: "
                f"set the result backend to a Redis URL ({BACKEND_ENV}, --result-backend or result_backend=)"
            )
        backend = broker
    if scheme_of(backend) in AMQP_SCHEMES:
        raise ConnectionConfigError(
            f"result backend URL {redact_url(backend)!r} is RabbitMQ, which cannot hold results: "
            f"use a Redis URL ({', '.join(f'{scheme}://' for scheme in REDIS_SCHEMES)}); RabbitMQ works as the broker"
        )
    _check_scheme("result backend", backend, REDIS_SCHEMES)
    for role, url in (("broker", broker), ("result backend", backend)):
        _check_query(role, url)
        if scheme_of(url) == "sentinel":
            try:
                sentinel_address(url)
            except ConnectionConfigError as error:
                raise ConnectionConfigError(f"{role} {error}") from None
    return ConnectionUrls(broker, backend)


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme


def _check_scheme(role: str, url: str, allowed: tuple[str, ...]) -> None:
    scheme = scheme_of(url)
    if scheme not in allowed:
        raise ConnectionConfigError(
            f"{role} URL {redact_url(url)!r} has scheme {scheme!r}; supported: {', '.join(allowed)}"
        )


def _check_query(role: str, url: str) -> None:
    """Refuse a Redis URL's query option no layer below understands, naming it (and the likely one)."""
    scheme = scheme_of(url)
    if scheme not in REDIS_SCHEMES:
        return  # RabbitMQ's options are read by kombu and py-amqp, which refuse unknown ones themselves
    known = REDIS_QUERY_OPTIONS if scheme == "sentinel" else REDIS_QUERY_OPTIONS - {"master_name"}
    for part in url.split(_SENTINEL_SEPARATOR):
        for key, _value in parse_qsl(urlsplit(part).query, keep_blank_values=True):
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConnectionConfigError(
                    f"{role} URL {redact_url(url)!r} has an unknown query option {key!r}; {hint}"
                    f"known: {', '.join(sorted(known))}"
                )
            if scheme == "redis" and key in _REDIS_SSL_OPTIONS:
                raise ConnectionConfigError(
                    f"{role} URL {redact_url(url)!r} has the TLS option {key!r} but the scheme redis:// "
                    "(no TLS): use rediss://"
                )


def sentinel_address(url: str) -> SentinelAddress:
    """The sentinels, master name, database and password of a `sentinel://` URL."""
    parts = [urlsplit(part) for part in url.split(_SENTINEL_SEPARATOR)]
    names = {value for part in parts for key, value in parse_qsl(part.query) if key == "master_name"}
    if len(names) != 1:
        raise ConnectionConfigError(
            f"URL {redact_url(url)!r} names {'no' if not names else 'more than one'} Sentinel master: "
            "add ?master_name=NAME (as in sentinel://h1:26379;sentinel://h2:26379/0?master_name=mymaster)"
        )
    sentinels = []
    for part in parts:
        if part.scheme != "sentinel" or not part.hostname:
            raise ConnectionConfigError(
                f"URL {redact_url(url)!r}: each ';'-separated part must be sentinel://host:port"
            )
        try:
            port = part.port or _DEFAULT_SENTINEL_PORT
        except ValueError:
            raise ConnectionConfigError(f"URL {redact_url(url)!r} has a port that is not a number") from None
        sentinels.append((part.hostname, port))
    first = parts[0]
    db_text = first.path.strip("/") or "0"
    if not db_text.isdigit():
        raise ConnectionConfigError(f"URL {redact_url(url)!r}: the database {db_text!r} is not a number")
    return SentinelAddress(
        sentinels=tuple(sentinels),
        master_name=names.pop(),
        db=int(db_text),
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password is not None else None,
    )


def celery_url(url: str) -> CeleryUrl:
    """`url` as Celery and kombu take it: for Sentinel, `master_name` moves to the transport options."""
    if scheme_of(url) != "sentinel":
        return CeleryUrl(url)
    address = sentinel_address(url)
    parts = []
    for part in (urlsplit(chunk) for chunk in url.split(_SENTINEL_SEPARATOR)):
        query = urlencode([(key, value) for key, value in parse_qsl(part.query) if key != "master_name"])
        parts.append(urlunsplit(part._replace(query=query)))
    return CeleryUrl(_SENTINEL_SEPARATOR.join(parts), {"master_name": address.master_name})


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, safe for logs and errors."""
    return _SENTINEL_SEPARATOR.join(_redact_one(part) for part in url.split(_SENTINEL_SEPARATOR))


def _redact_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
