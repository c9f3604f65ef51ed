"""Worker settings: one typed object, resolved from flags, then `TASK_*` variables, then defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from task_contracts import ConnectionUrls

from ._deliveries import DEFAULT_MAX_DELIVERIES, DEFAULT_VISIBILITY_TIMEOUT
from ._intake import DEFAULT_MAX_MESSAGE_BYTES
from ._threads import DEFAULT_THREADS
from ._watched_threads import DEFAULT_MAX_LEAKED_THREADS, DEFAULT_OVERRUN_GRACE

#: "all": Celery's remote control; "safe": the operator's commands are refused (`_remote_control`).
RemoteControl = Literal["all", "safe"]
REMOTE_CONTROL_CHOICES: tuple[RemoteControl, ...] = ("all", "safe")

DEFAULT_IMPLEMENTATIONS = ("task_server.tasks",)
#: Celery's `task_default_queue`: where a plain `send_task(name)` without routing publishes.
CELERY_DEFAULT_QUEUE = "celery"


@dataclass(frozen=True)
class WorkerSettings:
    urls: ConnectionUrls
    implementations: tuple[str, ...] = DEFAULT_IMPLEMENTATIONS
    queues: tuple[str, ...] = ()  # empty: every queue the contracts name, and `default_queue`
    # Also consumed when `queues` is empty, so producers that know only a task name get an answer;
    # None: not consumed (a broker shared with other Celery apps that use it).
    default_queue: str | None = CELERY_DEFAULT_QUEUE
    concurrency: int | None = None  # None: one process per CPU
    autoscale: tuple[int, int] | None = None  # (max, min) prefork processes; overrides concurrency
    pool: str = "prefork"
    loglevel: str = "INFO"
    hostname: str | None = None
    # Celery's mingle: at start, wait 1 s for other workers' revoked ids and clocks. Cancels and
    # revokes of task-client calls live in Redis, so a new worker needs none of it (and with many
    # workers every start asks them all).
    mingle: bool = False
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT  # seconds before a lost worker's task is redelivered
    # Seconds ahead a scheduled call is held in memory; later ones wait in Redis (`_deferral`).
    # None: half the visibility timeout, so that no held call is delivered twice.
    eta_horizon: float | None = None
    max_deliveries: int = DEFAULT_MAX_DELIVERIES  # starts of one idempotent task before DeliveryLimitExceeded
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # larger messages (body, headers, properties) are refused
    threads: int = DEFAULT_THREADS  # main-process threads for contracts declared cpu_bound=False (prefork only)
    inline: bool = True  # contracts declared on_event_loop=True run on the event loop (see `_inline`)
    overrun_grace: float = DEFAULT_OVERRUN_GRACE  # seconds past its bound before a thread-served call overran
    max_leaked_threads: int = DEFAULT_MAX_LEAKED_THREADS  # threads held by overruns before a restart
    # Messages each pool process reserves ahead (Celery's worker_prefetch_multiplier); None: see `_prefetch`.
    prefetch_multiplier: int | None = None
    result_ttl: float | None = None  # seconds every finished record is kept; None: each contract's own
    tracing: bool = False  # OpenTelemetry span per task (needs task-server[otel])
    metrics_port: int = 0  # Prometheus endpoint; 0: off
    metrics_address: str = "0.0.0.0"
    signing_key_file: str | None = None  # Ed25519 private key (PEM) signing every record; None: unsigned
    # "safe": the operator's remote-control commands are refused (`_remote_control`); "all": Celery's behaviour.
    remote_control: RemoteControl = "all"
    extra_celery_config: dict[str, object] = field(default_factory=dict)
