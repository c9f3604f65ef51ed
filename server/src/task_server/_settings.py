"""Worker settings: one typed object, resolved from flags, then `TASK_*` variables, then defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from task_contracts import ConnectionUrls

DEFAULT_IMPLEMENTATIONS = ("task_server.tasks",)


@dataclass(frozen=True)
class WorkerSettings:
    urls: ConnectionUrls
    implementations: tuple[str, ...] = DEFAULT_IMPLEMENTATIONS
    queues: tuple[str, ...] = ()  # empty: every queue the contracts name
    concurrency: int | None = None  # None: one process per CPU
    pool: str = "prefork"
    loglevel: str = "INFO"
    hostname: str | None = None
    extra_celery_config: dict[str, object] = field(default_factory=dict)
