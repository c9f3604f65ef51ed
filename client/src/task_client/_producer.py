"""Publishing: a call becomes a Celery protocol-v2 message through `send_task`, with bounded failure."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

import amqp.exceptions
import kombu.exceptions
import redis.exceptions
from celery import Celery

from task_contracts import Contract, celery_url, redact_url
from task_contracts.wire import AMQP_QUEUE_TYPE, CONTROL_CANCELLED, SHAPE_HEADER

from ._amqp import AmqpPublisher
from ._direct import DirectPublisher, EnvelopeBuilder, PendingPush
from ._errors import BrokerUnavailable, InvalidArguments
from ._pools import PoolExhausted
from ._reasons import connection_failure, is_timeout
from ._settings import ClientSettings
from ._transport import PRODUCER_AMQP, PublishingCelery

# Everything a publish can raise when the broker is down, refusing, frozen, or refusing the command
# (an ACL without LPUSH, a full maxmemory): kombu's errors, redis-py's, RabbitMQ's (py-amqp: a lost
# connection, or a publish it refused, e.g. a queue declared with other arguments), and the socket's.
# A value JSON cannot write (an int of more than 4,300 digits: Python's own limit), raised while
# the envelope is built: nothing was published.
UNENCODABLE = (ValueError, kombu.exceptions.EncodeError)


def unencodable(error: BaseException, contract: str) -> InvalidArguments:
    problem = f"the call cannot be written as JSON: {error}"
    return InvalidArguments(f"{contract}: {problem}", contract=contract, problems=[problem])


#: Cancelled calls named in one broadcast (about 110 bytes each).
_ANNOUNCED_PER_MESSAGE = 2_000

# A basic.nack (RabbitMQ could not store the message) is no AMQPError in py-amqp.
BROKER_ERRORS = (
    kombu.exceptions.KombuError,
    redis.exceptions.RedisError,
    amqp.exceptions.AMQPError,
    amqp.exceptions.MessageNacked,
    OSError,
)
_RETRY_INTERVAL = 0.1  # seconds before retrying a publish on a fresh connection


# Commands buffered before a pipeline is flushed: bounds client memory, still few round trips.
_PIPELINE_SIZE = 1000


@functools.cache
def call_headers(contract: Contract[..., Any]) -> Mapping[str, Any]:
    """The headers every call of a contract carries (its shape, so that a worker holding another
    version of the contract can tell what breaks): one read-only mapping per contract, not one per call."""
    return MappingProxyType({SHAPE_HEADER: contract.shape})


class Outgoing(NamedTuple):
    """One message of a batch, as `send_task` takes it."""

    name: str
    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    queue: str
    task_id: str
    headers: Mapping[str, Any]
    time_limit: float | None = None
    eta: datetime | None = None
    expires: datetime | None = None
    priority: int | None = None


def _transport_options(settings: ClientSettings) -> dict[str, Any]:
    """Bounds on connecting and on each reply, in the words of the broker's transport."""
    # One connection attempt per publish: kombu would otherwise retry for seconds.
    once = {"max_retries": 0}
    if settings.urls.broker_is_amqp:
        return {
            **once,
            # Publisher confirms: a publish returns once RabbitMQ has the message (on disk, for a
            # quorum queue), so a call that returned is never lost with the broker.
            "confirm_publish": True,
            "read_timeout": settings.socket_timeout,
            "write_timeout": settings.socket_timeout,
        }
    return {**once, "socket_connect_timeout": settings.connect_timeout, "socket_timeout": settings.socket_timeout}


def publishing_app(name: str, settings: ClientSettings) -> Celery:
    """A private Celery app (never the current app) that publishes by name with the client's bounds.

    Shared by single calls and batches (`Producer`) and workflows (`_canvas`), so both reach every
    broker the same way.
    """
    broker = celery_url(settings.urls.broker_url)
    # PRODUCER_AMQP: on Redis, kombu's transport without a new redis-py client object per publish.
    app = PublishingCelery(name, set_as_current=False, broker=broker.url, amqp=PRODUCER_AMQP)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Results are read by ResultWatcher; a Celery backend would add its own
        # subscription (and its ~19 s retry loop) to every publish.
        result_backend=None,
        broker_connection_retry_on_startup=False,
        broker_transport_options={**broker.transport_options, **_transport_options(settings)},
        broker_connection_timeout=settings.connect_timeout,
        # Producers (each on a broker connection of its own) as many as the client's other pools hold:
        # Celery's 10 made 200 threads through Sentinel wait on each other, past `pool_timeout` under load.
        broker_pool_limit=settings.max_connections,
        # Queues are declared as the worker declares them (RabbitMQ refuses a mismatch).
        task_create_missing_queue_type=AMQP_QUEUE_TYPE if settings.urls.broker_is_amqp else "classic",
        # Retries are ours (see `publish`): kombu's would also retry after a timeout.
        task_publish_retry=False,
    )
    return app


def _scheduled(message: Outgoing) -> bool:
    # eta, expires and priority take Celery's own path: kombu picks a priority's list key and
    # writes the time headers; the direct envelope carries none of them.
    return message.eta is not None or message.expires is not None or message.priority is not None


def _worth_retrying(failure: BaseException | None) -> bool:
    # A refused or reset connection (a pooled one left over from before a Redis restart) is worth
    # one more try on a fresh connection. A timeout is not: a frozen broker would only make the
    # caller wait again, and the message may have been stored. Nor is a pool that stayed full: the
    # caller already waited its bound for a connection.
    return failure is not None and not is_timeout(failure) and not isinstance(failure, PoolExhausted)


class Confirmation:
    """A call published without waiting for the broker's reply (`Producer.publish(confirm_later=True)`).

    Call it to read the reply: it raises `BrokerUnavailable` as the publish would have (after the
    retry the publish would have made). `release` reads it when the call's record has already come
    (the broker took the message, or there would be no record), `discard` gives it up.
    """

    __slots__ = ("attempt", "contract", "message", "pending", "producer")

    def __init__(
        self, producer: Producer, message: Outgoing, contract: str | None, attempt: int, pending: PendingPush
    ) -> None:
        self.producer, self.message, self.contract, self.attempt, self.pending = (
            producer,
            message,
            contract,
            attempt,
            pending,
        )

    def __call__(self) -> None:
        self.producer._confirm(self)

    def arrived(self) -> bool:
        """Whether calling it now reads the reply without waiting for it (see `PendingPush.arrived`)."""
        return self.pending.arrived()

    def release(self) -> None:
        try:  # noqa: SIM105 - once per call: contextlib.suppress is an object and two Python calls
            self.pending.confirm()
        except BROKER_ERRORS:
            pass  # the record came: the broker took the message, whatever its reply's fate

    def discard(self) -> None:
        self.pending.discard()


class Producer:
    """A private Celery app used only to publish by name. It never becomes the current app."""

    def __init__(self, settings: ClientSettings, reply_to: str) -> None:
        """`reply_to`: the channel every message names for its records (the client's reply channel)."""
        self.settings = settings
        self._reply_to = reply_to
        self._broker = redact_url(settings.urls.broker_url)
        self._app = publishing_app("task_client", settings)
        self._warm = threading.Lock()
        self._warmed = False
        # Hot path: on plain Redis, the envelope is built and LPUSHed directly (see `_direct`).
        broker = celery_url(settings.urls.broker_url)
        self._direct = (
            DirectPublisher(broker.url, settings, _PIPELINE_SIZE, reply_to)
            if broker.url.startswith("redis://") and not broker.transport_options
            else None
        )
        # On RabbitMQ the same envelope goes through kombu's Producer.publish, confirmed in rounds (`_amqp`).
        self._amqp = (
            AmqpPublisher(self._app, EnvelopeBuilder(reply_to), settings.socket_timeout, _PIPELINE_SIZE)
            if settings.urls.broker_is_amqp
            else None
        )

    def publish(
        self, message: Outgoing, *, contract: str | None = None, confirm_later: bool = False
    ) -> Confirmation | None:
        """Publish one message; raise `BrokerUnavailable` (URL without password) on any broker failure.

        `confirm_later`: on the direct path, return once the LPUSH is written, with the
        `Confirmation` that reads the broker's reply; elsewhere it is read now and None is returned.
        """
        self._warm_up()
        return self._publish(message, contract, confirm_later, first_attempt=1)

    def _publish(
        self, message: Outgoing, contract: str | None, confirm_later: bool, first_attempt: int
    ) -> Confirmation | None:
        task_id = message.task_id
        attempts = self.settings.publish_retries + 1
        failure: BaseException | None = None
        # Our own loop, not kombu's retry policy: that one also retries timeouts (a frozen broker).
        for attempt in range(first_attempt, attempts + 1):
            try:
                if self._direct is not None and not _scheduled(message):
                    if confirm_later:
                        return Confirmation(self, message, contract, attempt, self._direct.push(message))
                    self._direct.publish(message)
                    return None
                if self._amqp is not None and not _scheduled(message):
                    self._amqp.publish([message])
                    return None
                with self._pooled_producer() as producer, self._dropped_on_timeout(producer):
                    self._app.send_task(
                        message.name,
                        args=message.args,
                        kwargs=message.kwargs,
                        queue=message.queue,
                        task_id=task_id,
                        headers=dict(message.headers),
                        time_limit=message.time_limit,
                        eta=message.eta,
                        expires=message.expires,
                        priority=message.priority,
                        reply_to=self._reply_to,
                        retry=False,
                        producer=producer,
                    )
                return None
            except UNENCODABLE as error:
                raise unencodable(error, contract or message.name) from None
            except BROKER_ERRORS as error:
                failure = error
            if attempt == attempts or not _worth_retrying(failure):
                break
            time.sleep(_RETRY_INTERVAL)
        raise self._unavailable(failure, task_id, contract) from None

    def _confirm(self, confirmation: Confirmation) -> None:
        """Read the reply of a publish written earlier; on a refused or reset connection publish it
        again (the attempts left), as `publish` would have; raise `BrokerUnavailable` otherwise."""
        try:
            confirmation.pending.confirm()
            return
        except BROKER_ERRORS as error:
            failure = error
        message, contract = confirmation.message, confirmation.contract
        if confirmation.attempt <= self.settings.publish_retries and _worth_retrying(failure):
            time.sleep(_RETRY_INTERVAL)
            self._publish(message, contract, confirm_later=False, first_attempt=confirmation.attempt + 1)
            return
        raise self._unavailable(failure, message.task_id, contract) from None

    def _unavailable(self, failure: BaseException | None, task_id: str, contract: str | None) -> BrokerUnavailable:
        # After a timeout the broker may still have stored the message and run the call later.
        timed_out = failure is not None and is_timeout(failure)
        maybe_queued = f"; call {task_id} may still run if the broker recovers" if timed_out else ""
        return BrokerUnavailable(
            f"broker {self._broker} is unavailable: {connection_failure(failure, self.settings)}{maybe_queued}",
            url=self._broker,
            contract=contract,
            task_id=task_id,
        )

    def terminate(self, task_id: str, *, contract: str | None = None) -> None:
        """Ask every worker to stop the running call `task_id` (Celery's revoke with terminate, SIGTERM)."""
        try:
            self._app.control.revoke(task_id, terminate=True, signal="SIGTERM")
        except BROKER_ERRORS as error:
            raise BrokerUnavailable(
                f"broker {self._broker} is unavailable, so running call {task_id} could not be stopped: "
                f"{connection_failure(error, self.settings)}",
                url=self._broker,
                contract=contract,
                task_id=task_id,
            ) from None

    def announce_cancelled(self, tokens: Mapping[str, str]) -> None:
        """Tell every worker which queued calls were cancelled, with their cancel tokens, so that
        their messages are dropped on arrival (`CONTROL_CANCELLED`); raises `BrokerUnavailable`."""
        calls = list(tokens.items())
        try:
            for start in range(0, len(calls), _ANNOUNCED_PER_MESSAGE):
                piece = dict(calls[start : start + _ANNOUNCED_PER_MESSAGE])
                self._app.control.broadcast(CONTROL_CANCELLED, arguments={"calls": piece})
        except BROKER_ERRORS as error:
            raise BrokerUnavailable(
                f"broker {self._broker} is unavailable: {connection_failure(error, self.settings)}", url=self._broker
            ) from None

    @property
    def app(self) -> Celery:
        """The private Celery app (for remote-control broadcasts); never the current app."""
        return self._app

    def publish_many(self, messages: Sequence[Outgoing], *, contract: str | None = None) -> None:
        """Publish every message through one connection, pipelined: a few round trips, not one each.

        Raise `BrokerUnavailable` on any broker failure; messages already flushed may then still run.
        """
        self._warm_up()
        try:
            if self._direct is not None and not any(_scheduled(message) for message in messages):
                self._direct.publish_many(messages)
                return
            if self._amqp is not None and not any(_scheduled(message) for message in messages):
                self._amqp.publish(messages)
                return
            with (
                self._pooled_producer() as producer,
                self._dropped_on_timeout(producer),
                producer.batch(max_size=_PIPELINE_SIZE),
            ):
                for message in messages:
                    self._app.send_task(
                        message.name,
                        args=message.args,
                        kwargs=message.kwargs,
                        queue=message.queue,
                        task_id=message.task_id,
                        headers=dict(message.headers),
                        time_limit=message.time_limit,
                        eta=message.eta,
                        expires=message.expires,
                        priority=message.priority,
                        reply_to=self._reply_to,
                        producer=producer,
                    )
        except UNENCODABLE as error:
            raise unencodable(error, contract or messages[0].name) from None
        except (*BROKER_ERRORS, kombu.exceptions.BatchPublishError) as error:
            if isinstance(error.__cause__, UNENCODABLE):
                raise unencodable(error.__cause__, contract or messages[0].name) from None
            cause = error.__cause__ if isinstance(error, kombu.exceptions.BatchPublishError) else error
            raise BrokerUnavailable(
                f"broker {self._broker} is unavailable while publishing {len(messages)} message(s) together "
                f"(some may have been delivered): {connection_failure(cause or error, self.settings)}",
                url=self._broker,
                contract=contract,
            ) from None

    def find_message(self, task_id: str, queues: Sequence[str]) -> bool | None:
        """Whether a message for `task_id` waits on one of `queues` (any priority) or is delivered and
        unacknowledged; None when that cannot be told (a broker other than plain Redis, a long queue)."""
        if self._direct is None:
            return None
        try:
            return self._direct.find(task_id, queues)
        except BROKER_ERRORS as error:
            raise BrokerUnavailable(
                f"broker {self._broker} is unavailable: {connection_failure(error, self.settings)}", url=self._broker
            ) from None

    def close(self) -> None:
        # Closing drops pooled sockets; a broker gone meanwhile is no reason to fail the close.
        with contextlib.suppress(*BROKER_ERRORS):
            self._app.close()
            if self._direct is not None:
                self._direct.close()
            if self._amqp is not None:
                self._amqp.close()

    @contextlib.contextmanager
    def _pooled_producer(self) -> Iterator[Any]:
        """A producer from Celery's pool, waiting at most `pool_timeout` for a free one.

        Celery's `producer_or_acquire` waits forever for one of its `broker_pool_limit` slots
        (5.6 has no bound; 5.7's `broker_pool_acquire_timeout` is off by default): with a frozen
        broker, the 200th of 200 threads on 10 slots would wait for 20 rounds of socket timeouts.
        """
        pool = self._app.producer_pool
        try:
            producer = pool.acquire(block=True, timeout=self.settings.pool_timeout)
        except kombu.exceptions.LimitExceeded:
            raise PoolExhausted(
                f"all {pool.limit} producers of the client's Celery app stayed busy for "
                f"{self.settings.pool_timeout:g} s (broker_pool_limit={pool.limit})"
            ) from None
        try:
            yield producer
        finally:
            producer.release()

    @contextlib.contextmanager
    def _dropped_on_timeout(self, producer: Any) -> Iterator[None]:
        try:
            yield
        except BROKER_ERRORS as error:
            if self.settings.urls.broker_is_amqp and is_timeout(error):
                # RabbitMQ sent no confirm in time: drop the connection without a word. Closing it
                # politely (channel, then connection) would wait as long again, twice, for replies
                # a frozen broker never sends.
                producer.connection.collect()
            raise

    def _warm_up(self) -> None:
        # Celery builds its router and producer pool lazily; do it once, not in N threads at once.
        if self._warmed:
            return
        with self._warm:
            if not self._warmed:
                _ = self._app.amqp.router, self._app.producer_pool
                self._warmed = True
