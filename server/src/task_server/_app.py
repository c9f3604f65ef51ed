"""The worker's Celery app: safe serialisation, routes from the contracts, one task per contract."""

from __future__ import annotations

from typing import Any

from celery import Celery

from task_contracts import CATALOG, CeleryUrl, ContractCatalog, celery_url
from task_contracts.wire import AMQP_QUEUE_TYPE, chunk_task_name

from ._backend import RESULT_TTLS_SETTING, backend_path, store_retry_config
from ._chunks import register_chunks
from ._consumer import WORKER_CONSUMER
from ._control import announce
from ._deferral import ETA_HORIZON_SETTING
from ._deliveries import transport_options
from ._execution import register
from ._inline import INLINE_SETTING
from ._intake import MAX_MESSAGE_BYTES_SETTING
from ._internals.prefork import PREFORK_POOL
from ._prefetch import prefetch_multiplier
from ._registry import discover, verify
from ._remote_control import REMOTE_CONTROL_SETTING
from ._settings import CELERY_DEFAULT_QUEUE, WorkerSettings
from ._signing import SIGNING_KEY_SETTING
from ._threads import MAX_LEAKED_SETTING, OVERRUN_GRACE_SETTING, THREADS_SETTING
from ._transport import WORKER_AMQP


def create_app(settings: WorkerSettings, catalog: ContractCatalog = CATALOG) -> Celery:
    """Build the worker app; raise `ImplementationError` unless every contract is implemented exactly."""
    implementations = verify(catalog, discover(settings.implementations))
    # WORKER_AMQP: an unreadable item on a queue is dropped and logged instead of stopping the worker.
    app = Celery("task_server", set_as_current=False, amqp=WORKER_AMQP)
    app.conf.update(celery_config(settings, catalog))
    app.backend_cls = backend_path(settings.urls.result_backend)  # a result not stored becomes OutcomeUnknown
    for implementation in implementations.values():
        register(app, implementation, settings.max_deliveries)
        register_chunks(app, implementation, settings.max_deliveries)
    announce(app, [item.contract for item in implementations.values()])
    return app


def consumed_queues(settings: WorkerSettings, catalog: ContractCatalog = CATALOG) -> list[str]:
    """The queues the worker consumes: `settings.queues` exactly, or every contract's queue and the default queue."""
    if settings.queues:
        return list(settings.queues)
    queues = catalog.queues()
    if settings.default_queue and settings.default_queue not in queues:
        queues.append(settings.default_queue)
    return queues


def celery_config(settings: WorkerSettings, catalog: ContractCatalog) -> dict[str, Any]:
    broker = celery_url(settings.urls.broker_url)
    backend = celery_url(settings.urls.result_backend)
    config: dict[str, Any] = {
        "broker_url": broker.url,
        "result_backend": backend.url,
        "result_backend_transport_options": dict(backend.transport_options),
        # JSON only: a pickle message could run arbitrary code on the worker.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_routes": {item.name: {"queue": item.queue} for item in catalog},
        "task_default_queue": settings.default_queue or CELERY_DEFAULT_QUEUE,
        "broker_connection_retry_on_startup": True,
        # A worker outlives a Redis restart or outage of any length: it keeps reconnecting
        # (every 2 s, growing to 30 s) instead of exiting after Celery's default 100 attempts.
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        "worker_hijack_root_logger": True,
        "enable_utc": True,
        # Task events for standard monitoring (Flower, `celery events`): off by default, as in
        # Celery, since each call then costs three more Redis PUBLISHes (`--events` turns them on).
        "worker_send_task_events": False,
        # Celery's consumer, with a net under its message handling: no message stops it (see `_consumer`).
        "worker_consumer": WORKER_CONSUMER,
        # `--pool prefork` (the default) is Celery's, stopping without a needless half second (see `prefork`).
        "worker_pool": PREFORK_POOL,
        # How long each contract's finished records are kept (see `_backend`).
        RESULT_TTLS_SETTING: result_ttls(settings, catalog),
        # Contracts declared cpu_bound=False run on threads of the main process (see `_threads`);
        # with the threads or solo pool every task already runs there.
        THREADS_SETTING: settings.threads if settings.pool == "prefork" else 0,
        INLINE_SETTING: settings.inline,
        SIGNING_KEY_SETTING: settings.signing_key_file,
        REMOTE_CONTROL_SETTING: settings.remote_control,
        OVERRUN_GRACE_SETTING: settings.overrun_grace,
        MAX_LEAKED_SETTING: settings.max_leaked_threads,
        # Messages reserved ahead: Celery's 4 per process, and on RabbitMQ per serving thread too (`_prefetch`).
        "worker_prefetch_multiplier": prefetch_multiplier(settings, catalog),
    }
    config.update(broker_config(settings, broker))
    config[MAX_MESSAGE_BYTES_SETTING] = settings.max_message_bytes
    config.update(store_retry_config())
    config.update(settings.extra_celery_config)
    return config


def result_ttls(settings: WorkerSettings, catalog: ContractCatalog) -> dict[str, float]:
    """Seconds each task's finished record is kept: the worker's `--result-ttl`, else the contract's."""
    ttls = {}
    for item in catalog:
        ttl = settings.result_ttl if settings.result_ttl is not None else item.result_ttl
        ttls[item.name] = ttls[chunk_task_name(item.name)] = ttl
    return ttls


def broker_config(settings: WorkerSettings, broker: CeleryUrl) -> dict[str, Any]:
    """What differs between brokers: how a lost worker's task comes back, and how queues are declared."""
    if not settings.urls.broker_is_amqp:
        # Redis: kombu keeps delivered messages in an unacked set and restores them after the
        # visibility timeout (see `_deliveries`).
        horizon = settings.eta_horizon if settings.eta_horizon is not None else settings.visibility_timeout / 2
        return {
            "broker_transport_options": {**broker.transport_options, **transport_options(settings.visibility_timeout)},
            # Calls due later than this wait in Redis, not in the worker's memory (`_deferral`).
            ETA_HORIZON_SETTING: horizon,
        }
    return {
        # RabbitMQ redelivers an unacknowledged message as soon as the worker's connection closes
        # (a killed worker): no visibility timeout. Quorum queues are durable and replicated, and
        # every message on them persistent; publisher confirms on what the worker publishes too.
        "broker_transport_options": {"confirm_publish": True},
        # Only the contracts' queues are quorum queues (created as "missing" queues). Celery's default
        # queue stays classic: stock producers that know only a task name declare it without a type,
        # and RabbitMQ refuses a declaration whose type differs.
        "task_default_queue_type": "classic",
        "task_create_missing_queue_type": AMQP_QUEUE_TYPE,
        # A quorum queue knows no global QoS; Celery turns it off when it sees one (said here, not guessed).
        "worker_detect_quorum_queues": True,
    }
