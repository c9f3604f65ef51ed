"""The worker's Celery app: safe serialisation, routes from the contracts, one task per contract."""

from __future__ import annotations

from typing import Any

from celery import Celery

from task_contracts import CATALOG, ContractCatalog

from ._chunks import register_chunks
from ._execution import register
from ._registry import discover, verify
from ._settings import WorkerSettings


def create_app(settings: WorkerSettings, catalog: ContractCatalog = CATALOG) -> Celery:
    """Build the worker app; raise `ImplementationError` unless every contract is implemented exactly."""
    implementations = verify(catalog, discover(settings.implementations))
    app = Celery("task_server", set_as_current=False)
    app.conf.update(celery_config(settings, catalog))
    for implementation in implementations.values():
        register(app, implementation)
        register_chunks(app, implementation)
    return app


def celery_config(settings: WorkerSettings, catalog: ContractCatalog) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.urls.broker_url,
        "result_backend": settings.urls.result_backend,
        # JSON only: a pickle message could run arbitrary code on the worker.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_routes": {item.name: {"queue": item.queue} for item in catalog},
        "task_default_queue": catalog.queues()[0] if len(catalog) else "default",
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": True,
        "enable_utc": True,
    }
    config.update(settings.extra_celery_config)
    return config
