"""`task-server`: start workers and verify implementations, without `celery -A` paths."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from celery import Celery, signals

from task_contracts import ConnectionConfigError, ContractCatalog, load_catalog, redact_url, resolve_urls

from ._app import consumed_queues, create_app, result_ttls
from ._beat import DEFAULT_LEASE, DEFAULT_LOCK_KEY, BeatSettings, create_beat_app, load_schedules
from ._deliveries import DEFAULT_MAX_DELIVERIES, DEFAULT_VISIBILITY_TIMEOUT, lifetime_warnings, redelivery_warnings
from ._dev import DEFAULT_DEV_PORT, choose_port, embedded_redis
from ._errors import (
    EmbeddedRedisError,
    ImplementationError,
    PortTaken,
    ScheduleError,
    SigningKeyError,
    TracingUnavailable,
)
from ._intake import DEFAULT_MAX_MESSAGE_BYTES
from ._reachability import unreachable_reason
from ._registry import discover, verify
from ._restart import restart_if_requested
from ._settings import (
    CELERY_DEFAULT_QUEUE,
    DEFAULT_IMPLEMENTATIONS,
    REMOTE_CONTROL_CHOICES,
    RemoteControl,
    WorkerSettings,
)
from ._signing import RecordSigner, generate_key_pair
from ._threads import DEFAULT_THREADS
from ._watched_threads import DEFAULT_MAX_LEAKED_THREADS, DEFAULT_OVERRUN_GRACE

EXIT_IMPLEMENTATION = 3


def _autoscale(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """`MAX,MIN` (or `MAX`, then MIN is 1): pool sizes for Celery's autoscaler."""
    if value is None:
        return None
    try:
        sizes = [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not MAX,MIN (two whole numbers, e.g. 8,2)") from None
    if len(sizes) == 1:
        sizes.append(1)
    if len(sizes) != 2 or not sizes[0] >= sizes[1] >= 1:
        raise click.BadParameter(f"{value!r}: expected MAX,MIN with MAX >= MIN >= 1, e.g. 8,2")
    return sizes[0], sizes[1]


DEFAULT_CATALOG = "task_contracts.catalog:CATALOG"


def _load_catalog(context: click.Context, parameter: click.Parameter, spec: str) -> ContractCatalog:
    try:
        return load_catalog(spec)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise click.BadParameter(f"{spec}: {error}", context, parameter) from None


_catalog_option = click.option(
    "--catalog",
    envvar="TASK_CATALOG",
    default=DEFAULT_CATALOG,
    show_default=True,
    metavar="MODULE:ATTR",
    callback=_load_catalog,
    help="The ContractCatalog to serve [env TASK_CATALOG].",
)


def _check_modules(context: click.Context, parameter: click.Parameter, names: tuple[str, ...]) -> tuple[str, ...]:
    """Each module must exist (a typo is a usage error, not a ModuleNotFoundError traceback)."""
    for name in names:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError) as error:  # a missing parent package, or an empty name
            raise click.BadParameter(f"{name!r}: {error}", context, parameter) from None
        if found is None:
            raise click.BadParameter(f"no module named {name!r} (installed? on PYTHONPATH?)", context, parameter)
    return names


_implementations_option = click.option(
    "--implementations",
    "-I",
    callback=_check_modules,
    multiple=True,
    default=DEFAULT_IMPLEMENTATIONS,
    show_default=True,
    metavar="MODULE",
    help="Module or package whose `@implements` functions to serve (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Serve task contracts as Celery tasks."""


@main.command()
@_catalog_option
@_implementations_option
def check(catalog: ContractCatalog, implementations: tuple[str, ...]) -> None:
    """Verify that every contract has exactly one implementation with the same signature."""
    try:
        verify(catalog, _discover(implementations))
    except ImplementationError as error:
        _refuse(error)
    for item in catalog:
        click.echo(f"ok  {item.name}{item.signature_text()}  queue={item.queue}  fingerprint={item.fingerprint}")


@main.command()
@click.option(
    "--broker-url", envvar="TASK_BROKER_URL", help="Broker URL [env TASK_BROKER_URL; default redis://127.0.0.1:6379/0]."
)
@click.option(
    "--result-backend",
    envvar="TASK_RESULT_BACKEND",
    help="Result backend URL [env TASK_RESULT_BACKEND; default: the broker URL].",
)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Worker processes [default: number of CPUs].")
@click.option(
    "--queues",
    "-Q",
    help="Comma-separated queues to consume, exactly [default: every contract's queue and the default queue]; "
    "each must be a contract's queue or the default queue.",
)
@click.option(
    "--extra-queues",
    metavar="QUEUES",
    help="Comma-separated queues no contract names, consumed too: e.g. the old queue while a contract moves.",
)
@click.option(
    "--default-queue",
    envvar="TASK_DEFAULT_QUEUE",
    default=CELERY_DEFAULT_QUEUE,
    show_default=True,
    metavar="NAME",
    help="Celery's default queue, where plain `send_task(name)` calls without routing go; consumed too, and "
    "names this worker does not serve fail there with NotRegistered [env TASK_DEFAULT_QUEUE].",
)
@click.option(
    "--no-default-queue",
    envvar="TASK_NO_DEFAULT_QUEUE",
    is_flag=True,
    help="Do not consume the default queue: for a broker shared with other Celery apps that use it "
    "[env TASK_NO_DEFAULT_QUEUE=1].",
)
@click.option(
    "--loglevel",
    "-l",
    # Celery's default: INFO logs two lines for every task (received, succeeded), which at a few
    # thousand calls a second is most of the worker's output and ~80 us of its main thread per call.
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="INFO also logs every task received and finished.",
)
@click.option(
    "--autoscale",
    callback=_autoscale,
    metavar="MAX,MIN",
    help="Grow the prefork pool up to MAX processes under load and shrink it back to MIN (overrides --concurrency).",
)
@click.option("--pool", default="prefork", show_default=True, type=click.Choice(["prefork", "threads", "solo"]))
@click.option("--hostname", "-n", help="Node name, unique per worker, e.g. math1@%h (%h: this host's name).")
@click.option(
    "--mingle/--without-mingle",
    default=False,
    show_default=True,
    help="Ask the other workers for their revoked ids at start (Celery's mingle: 1 s more per start). "
    "task-client's cancels live in Redis and reach a new worker without it.",
)
@click.option(
    "--events/--no-events",
    default=False,
    show_default=True,
    help="Send task events for monitoring (Flower, `celery events`); three Redis PUBLISHes more per call.",
)
@click.option(
    "--threads",
    envvar="TASK_THREADS",
    type=click.IntRange(min=0),
    default=DEFAULT_THREADS,
    show_default=True,
    help="Threads of the main process serving contracts declared cpu_bound=False (prefork pool only; "
    "0: serve them from the pool too) [env TASK_THREADS].",
)
@click.option(
    "--inline/--no-inline",
    envvar="TASK_INLINE",
    default=True,
    show_default=True,
    help="Run the calls of contracts declared on_event_loop=True on the event loop (back to threads for good "
    "after one run over 10 ms); --no-inline keeps them on threads too [env TASK_INLINE=0 to turn off].",
)
@click.option(
    "--overrun-grace",
    envvar="TASK_OVERRUN_GRACE",
    type=click.FloatRange(min=0),
    default=DEFAULT_OVERRUN_GRACE,
    show_default=True,
    help="Seconds a thread-served call may run past its contract's bound before it counts as an overrun: "
    "logged, counted, and its thread replaced [env TASK_OVERRUN_GRACE].",
)
@click.option(
    "--max-leaked-threads",
    envvar="TASK_MAX_LEAKED_THREADS",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_LEAKED_THREADS,
    show_default=True,
    help="Threads still held by overrun calls beyond which the worker restarts itself, putting its "
    "unfinished messages back on their queues first [env TASK_MAX_LEAKED_THREADS].",
)
@click.option(
    "--result-ttl",
    envvar="TASK_RESULT_TTL",
    type=click.FloatRange(min=1),
    help="Seconds every finished call's record is kept in the result backend [env TASK_RESULT_TTL; "
    "default: each contract's result_ttl, 10 x its timeout and at least 300 s].",
)
@click.option(
    "--visibility-timeout",
    envvar="TASK_VISIBILITY_TIMEOUT",
    type=click.FloatRange(min=1),
    default=DEFAULT_VISIBILITY_TIMEOUT,
    show_default=True,
    help="Redis brokers: seconds after which a task whose worker was killed is delivered again "
    "[env TASK_VISIBILITY_TIMEOUT]; keep it above every contract's timeout. RabbitMQ redelivers at once.",
)
@click.option(
    "--eta-horizon",
    envvar="TASK_ETA_HORIZON",
    type=click.FloatRange(min=1),
    default=None,
    help="Redis brokers: seconds ahead a scheduled call (eta/countdown) is held in the worker's memory; "
    "calls due later wait in Redis [env TASK_ETA_HORIZON; default: half the visibility timeout].",
)
@click.option(
    "--max-deliveries",
    envvar="TASK_MAX_DELIVERIES",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_DELIVERIES,
    show_default=True,
    help="Starts allowed for one idempotent task lost with its worker before it fails with DeliveryLimitExceeded "
    "[env TASK_MAX_DELIVERIES]; non-idempotent tasks never start twice.",
)
@click.option(
    "--max-message-bytes",
    envvar="TASK_MAX_MESSAGE_BYTES",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    show_default=True,
    help="Largest message accepted, body, headers and properties together; larger ones fail with RefusedMessage "
    "[env TASK_MAX_MESSAGE_BYTES].",
)
@click.option(
    "--tracing/--no-tracing",
    envvar="TASK_TRACING",
    default=False,
    show_default=True,
    help="OpenTelemetry span for every task, joined to the caller's trace; exported as the OTEL_* variables say "
    "(default OTLP over HTTP) [env TASK_TRACING; needs task-server[otel]].",
)
@click.option(
    "--metrics-port",
    envvar="TASK_METRICS_PORT",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Serve Prometheus metrics on this port at /metrics; 0: off [env TASK_METRICS_PORT].",
)
@click.option(
    "--metrics-address",
    envvar="TASK_METRICS_ADDRESS",
    default="0.0.0.0",
    show_default=True,
    help="Address the metrics endpoint listens on; 127.0.0.1 keeps it local [env TASK_METRICS_ADDRESS].",
)
@click.option(
    "--signing-key-file",
    envvar="TASK_SIGNING_KEY_FILE",
    type=click.Path(dir_okay=False),
    help="Ed25519 private key (PEM) that signs every result record, so clients holding its public half "
    "refuse forged ones [env TASK_SIGNING_KEY_FILE; `task-server keygen` writes a pair; needs task-server[signing]].",
)
@click.option(
    "--remote-control",
    envvar="TASK_REMOTE_CONTROL",
    type=click.Choice(REMOTE_CONTROL_CHOICES),
    default="all",
    show_default=True,
    help="safe: refuse Celery's operator commands (shutdown, pool_restart, pool_grow/pool_shrink, autoscale, "
    "cancel_consumer, rate_limit, time_limit, enable_events, objgraph, memdump, ...) that anyone allowed to "
    "broadcast could send, keeping inspect, cancels and client.workers(); all: Celery's behaviour "
    "[env TASK_REMOTE_CONTROL].",
)
@click.option(
    "--prefetch-multiplier",
    type=click.IntRange(min=1),
    default=None,
    help="Messages each pool process reserves ahead (Celery worker_prefetch_multiplier); 1 makes message "
    "priority strict, since reserved messages run in arrival order. [default: 4; on RabbitMQ, 4 per "
    "thread serving contracts too]",
)
@_catalog_option
@_implementations_option
def worker(
    broker_url: str | None,
    result_backend: str | None,
    concurrency: int | None,
    autoscale: tuple[int, int] | None,
    queues: str | None,
    extra_queues: str | None,
    default_queue: str,
    no_default_queue: bool,
    loglevel: str,
    pool: str,
    hostname: str | None,
    mingle: bool,
    events: bool,
    threads: int,
    inline: bool,
    overrun_grace: float,
    max_leaked_threads: int,
    result_ttl: float | None,
    visibility_timeout: float,
    eta_horizon: float | None,
    max_deliveries: int,
    max_message_bytes: int,
    tracing: bool,
    metrics_port: int,
    metrics_address: str,
    signing_key_file: str | None,
    remote_control: RemoteControl,
    prefetch_multiplier: int | None,
    catalog: ContractCatalog,
    implementations: tuple[str, ...],
) -> None:
    """Start a Celery worker serving every contract (refuses to start if one is not implemented)."""
    try:
        urls = resolve_urls(broker_url, result_backend)
    except ConnectionConfigError as error:
        raise click.UsageError(str(error)) from None
    if autoscale and pool != "prefork":
        raise click.UsageError(f"--autoscale needs the prefork pool, not --pool {pool}")
    named = _queue_list(queues)
    known = [*catalog.queues(), *([] if no_default_queue else [default_queue])]
    unknown = [queue for queue in named if queue not in known]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(map(repr, unknown))}: no contract of the catalog uses it; known: {', '.join(known)} "
            "(--extra-queues consumes a queue no contract names)",
            param_hint="--queues",
        )
    extra = _queue_list(extra_queues)
    if extra:
        named = [*(named or known), *extra]  # `known` is what the worker consumes by default
    settings = WorkerSettings(
        urls=urls,
        implementations=implementations,
        queues=tuple(dict.fromkeys(named)),
        default_queue=None if no_default_queue else default_queue,
        concurrency=concurrency,
        autoscale=autoscale,
        pool=pool,
        loglevel=loglevel.upper(),
        hostname=hostname,
        mingle=mingle,
        extra_celery_config={"worker_send_task_events": True} if events else {},
        prefetch_multiplier=prefetch_multiplier,
        threads=threads,
        inline=inline,
        overrun_grace=overrun_grace,
        max_leaked_threads=max_leaked_threads,
        result_ttl=result_ttl,
        visibility_timeout=visibility_timeout,
        eta_horizon=eta_horizon,
        max_deliveries=max_deliveries,
        max_message_bytes=max_message_bytes,
        tracing=tracing,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        signing_key_file=signing_key_file,
        remote_control=remote_control,
    )
    if signing_key_file:
        try:
            signer = RecordSigner.from_file(signing_key_file)
        except SigningKeyError as error:
            raise click.UsageError(str(error)) from None
        click.echo(f"task-server: signing result records with key {signer.key_id}", err=True)
    _serve(settings, catalog)
    # Past --max-leaked-threads: the same command again, in this process (not for `dev`, whose
    # embedded Redis, and the calls in it, would not survive the exec).
    restart_if_requested()


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--name", default="record-signing", show_default=True, help="File name stem of the pair.")
def keygen(directory: Path, name: str) -> None:
    """Write a new Ed25519 key pair for signing result records: NAME.key (private, mode 0600, for
    workers only) and NAME.pub (public, for clients: TASK_VERIFY_KEY_FILE). Refuses to overwrite."""
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        key = generate_key_pair(private, public)
    except FileExistsError:
        raise click.UsageError(f"{private} exists; not overwritten") from None
    except SigningKeyError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"{private} (workers: TASK_SIGNING_KEY_FILE)\n{public} (clients: TASK_VERIFY_KEY_FILE)\nkey id {key}")


@main.command()
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=DEFAULT_DEV_PORT,
    show_default=True,
    help="Port of the embedded Redis on 127.0.0.1; 0, or the default when it is taken, picks a free one "
    "(and says so); another port that is taken is refused.",
)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes.")
@_catalog_option
@_implementations_option
def dev(port: int, concurrency: int, catalog: ContractCatalog, implementations: tuple[str, ...]) -> None:
    """Start an embedded Redis and a worker on it, for development; Ctrl-C stops both."""
    try:  # before anything is started or printed: a mismatch is refused first
        verify(catalog, _discover(implementations))
    except ImplementationError as error:
        _refuse(error)
    try:
        chosen = choose_port(port)
    except PortTaken as error:
        raise click.BadParameter(str(error), param_hint="--port") from None
    if port != 0 and chosen != port:  # --port 0 asked for a free port: nothing to explain
        click.echo(f"task-server dev: port {port} is taken; using the free port {chosen}", err=True)
    try:
        with embedded_redis(chosen) as redis:
            click.echo(f"task-server dev: redis-server on 127.0.0.1:{redis.port} (no persistence); Ctrl-C stops all")
            click.echo("Point clients at it:")
            click.echo(f"  export TASK_BROKER_URL={redis.url}")
            click.echo(f"  export TASK_RESULT_BACKEND={redis.url}")
            urls = resolve_urls(redis.url, redis.url)
            _serve(WorkerSettings(urls=urls, implementations=implementations, concurrency=concurrency), catalog)
    except EmbeddedRedisError as error:
        raise click.UsageError(str(error)) from None


def _serve(settings: WorkerSettings, catalog: ContractCatalog) -> None:
    """Build the worker app (refusing on an implementation problem), say where it connects, and run it."""
    try:
        app = create_app(settings, catalog)
    except ImplementationError as error:
        _refuse(error)
    urls = settings.urls
    click.echo(
        f"task-server: broker {redact_url(urls.broker_url)}, {len(catalog)} contracts, "
        f"queues {', '.join(consumed_queues(settings, catalog))}",
        err=True,
    )
    # On RabbitMQ a lost worker's task comes back when its connection closes: no visibility timeout.
    warnings = [] if urls.broker_is_amqp else redelivery_warnings(settings.visibility_timeout, catalog)
    warnings += lifetime_warnings(settings.visibility_timeout, result_ttls(settings, catalog), catalog)
    for warning in warnings:
        click.echo(f"task-server: warning: {warning}", err=True)
    roles: dict[str, list[str]] = {}  # one line per URL, even when broker and backend share it
    for role, url in (("broker", urls.broker_url), ("result backend", urls.result_backend)):
        roles.setdefault(url, []).append(role)
    for url, names in roles.items():
        reason = unreachable_reason(url)
        if reason is not None:
            click.echo(
                f"task-server: waiting for the {' and '.join(names)} at {redact_url(url)}: {reason} "
                "(the worker keeps retrying, every 2 s growing to 30 s, until it answers)",
                err=True,
            )
    if settings.tracing:
        _enable_tracing(settings)
    if settings.metrics_port:
        _serve_metrics(app, settings, catalog)

    def say_ready(**_: Any) -> None:
        # Celery's own "ready." is logged at INFO only; this says it at every log level.
        click.echo("task-server: ready", err=True)

    signals.worker_ready.connect(say_ready, weak=False)
    app.worker_main(argv=_worker_argv(settings, catalog))


def _queue_list(text: str | None) -> list[str]:
    return [queue for queue in (text or "").split(",") if queue]


def _enable_tracing(settings: WorkerSettings) -> None:
    from ._tracing import enable_tracing  # imported only when asked for: no cost otherwise

    try:
        enable_tracing(settings.pool, main_serves_tasks=settings.threads > 0)
    except TracingUnavailable as error:
        raise click.UsageError(str(error)) from None
    click.echo("task-server: tracing on (OpenTelemetry)", err=True)


def _serve_metrics(app: Celery, settings: WorkerSettings, catalog: ContractCatalog) -> None:
    from ._metrics import serve_metrics  # imported only when asked for: no cost otherwise

    try:
        serve_metrics(app, catalog, consumed_queues(settings, catalog), settings.metrics_port, settings.metrics_address)
    except OSError as error:
        raise click.UsageError(
            f"--metrics-port {settings.metrics_port}: cannot listen on {settings.metrics_address}: {error}"
        ) from None
    click.echo(f"task-server: metrics on http://{settings.metrics_address}:{settings.metrics_port}/metrics", err=True)


@main.command()
@click.option(
    "--broker-url", envvar="TASK_BROKER_URL", help="Broker URL [env TASK_BROKER_URL; default redis://127.0.0.1:6379/0]."
)
@click.option(
    "--result-backend",
    envvar="TASK_RESULT_BACKEND",
    help="Redis holding the leader lease and the last run times [env TASK_RESULT_BACKEND; default: the broker URL].",
)
@click.option(
    "--schedules",
    "schedules_spec",
    envvar="TASK_SCHEDULES",
    required=True,
    metavar="MODULE:ATTR",
    help="A list of task_contracts.Schedule to run [env TASK_SCHEDULES].",
)
@_catalog_option
@click.option(
    "--lease",
    envvar="TASK_BEAT_LEASE",
    type=click.FloatRange(min=0.5),
    default=DEFAULT_LEASE,
    show_default=True,
    help="Seconds the leader's lease lasts; another beat takes over a dead leader within 4/3 of it "
    "[env TASK_BEAT_LEASE].",
)
@click.option(
    "--lock-key",
    envvar="TASK_BEAT_LOCK_KEY",
    default=DEFAULT_LOCK_KEY,
    show_default=True,
    help="Redis key of the leader lease; beats sharing it fire as one [env TASK_BEAT_LOCK_KEY].",
)
@click.option(
    "--loglevel",
    "-l",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def beat(
    broker_url: str | None,
    result_backend: str | None,
    schedules_spec: str,
    catalog: ContractCatalog,
    lease: float,
    lock_key: str,
    loglevel: str,
) -> None:
    """Run the periodic schedules (Celery beat); of several beats on one Redis only the leader fires."""
    try:
        urls = resolve_urls(broker_url, result_backend)
    except ConnectionConfigError as error:
        raise click.UsageError(str(error)) from None
    try:
        schedules = load_schedules(schedules_spec)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        raise click.UsageError(f"cannot load: {error}") from None
    settings = BeatSettings(urls=urls, lease=lease, lock_key=lock_key, loglevel=loglevel.upper())
    try:
        app = create_beat_app(settings, schedules, catalog)
    except ScheduleError as error:
        click.echo("task-server: the schedules do not match the contracts:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_IMPLEMENTATION)
    click.echo(f"task-server: beat, broker {redact_url(urls.broker_url)}, {len(schedules)} schedules", err=True)
    app.Beat(loglevel=settings.loglevel, quiet=True).run()


def _worker_argv(settings: WorkerSettings, catalog: ContractCatalog) -> list[str]:
    argv = ["worker", f"--loglevel={settings.loglevel}", f"--pool={settings.pool}"]
    argv.append(f"--queues={','.join(consumed_queues(settings, catalog))}")
    if settings.concurrency:
        argv.append(f"--concurrency={settings.concurrency}")
    if settings.autoscale:
        maximum, minimum = settings.autoscale
        argv.append(f"--autoscale={maximum},{minimum}")
    if settings.hostname:
        argv.append(f"--hostname={settings.hostname}")
    if not settings.mingle:
        argv.append("--without-mingle")
    return argv


def _discover(implementations: tuple[str, ...]) -> list[Any]:
    try:
        return discover(implementations)
    except ImportError as error:  # inside an implementation module: a usage problem, said in one line
        raise click.UsageError(f"--implementations: importing failed: {error}") from None


def _refuse(error: ImplementationError) -> NoReturn:
    click.echo("task-server: the implementations do not match the contracts:", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(EXIT_IMPLEMENTATION)
