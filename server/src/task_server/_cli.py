"""`task-server`: start workers and verify implementations, without `celery -A` paths."""

from __future__ import annotations

import sys

import click

from task_contracts import CATALOG, ConnectionConfigError, ContractCatalog, load_catalog, redact_url, resolve_urls

from ._app import create_app
from ._deliveries import DEFAULT_MAX_DELIVERIES, DEFAULT_VISIBILITY_TIMEOUT, redelivery_warnings
from ._errors import ImplementationError
from ._intake import DEFAULT_MAX_MESSAGE_BYTES
from ._registry import discover, verify
from ._settings import DEFAULT_IMPLEMENTATIONS, WorkerSettings

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


_implementations_option = click.option(
    "--implementations",
    "-I",
    multiple=True,
    default=DEFAULT_IMPLEMENTATIONS,
    show_default=True,
    metavar="MODULE",
    help="Module or package whose `@implements` functions to serve (repeatable).",
)

_catalog_option = click.option(
    "--catalog",
    envvar="TASK_CATALOG",
    metavar="MODULE:NAME",
    help="The ContractCatalog to serve [env TASK_CATALOG; default: task_contracts.catalog:CATALOG].",
)


def _catalog(spec: str | None) -> ContractCatalog:
    if not spec:
        return CATALOG
    try:
        return load_catalog(spec)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise click.BadParameter(f"{spec}: {error}", param_hint="--catalog") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Serve task contracts as Celery tasks."""


@main.command()
@_implementations_option
@_catalog_option
def check(implementations: tuple[str, ...], catalog: str | None) -> None:
    """Verify that every contract has exactly one implementation with the same signature."""
    contracts = _catalog(catalog)
    try:
        verify(contracts, discover(implementations))
    except ImplementationError as error:
        _refuse(error)
    for item in contracts:
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
@click.option("--queues", "-Q", help="Comma-separated queues to consume [default: every contract's queue].")
@click.option(
    "--loglevel",
    "-l",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
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
    "--events/--no-events",
    default=True,
    show_default=True,
    help="Send task events for monitoring (Flower, `celery events`).",
)
@click.option(
    "--visibility-timeout",
    envvar="TASK_VISIBILITY_TIMEOUT",
    type=click.FloatRange(min=1),
    default=DEFAULT_VISIBILITY_TIMEOUT,
    show_default=True,
    help="Seconds after which a task whose worker was killed is delivered again [env TASK_VISIBILITY_TIMEOUT]; "
    "keep it above every contract's timeout.",
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
    help="Largest message body accepted; larger ones fail with RefusedMessage [env TASK_MAX_MESSAGE_BYTES].",
)
@click.option(
    "--prefetch-multiplier",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Messages each pool process reserves ahead (Celery worker_prefetch_multiplier); 1 makes message "
    "priority strict, since reserved messages run in arrival order.",
)
@_implementations_option
@_catalog_option
def worker(
    broker_url: str | None,
    result_backend: str | None,
    concurrency: int | None,
    autoscale: tuple[int, int] | None,
    queues: str | None,
    loglevel: str,
    pool: str,
    hostname: str | None,
    events: bool,
    visibility_timeout: float,
    max_deliveries: int,
    max_message_bytes: int,
    prefetch_multiplier: int,
    implementations: tuple[str, ...],
    catalog: str | None,
) -> None:
    """Start a Celery worker serving every contract (refuses to start if one is not implemented)."""
    try:
        urls = resolve_urls(broker_url, result_backend)
    except ConnectionConfigError as error:
        raise click.UsageError(str(error)) from None
    if autoscale and pool != "prefork":
        raise click.UsageError(f"--autoscale needs the prefork pool, not --pool {pool}")
    settings = WorkerSettings(
        urls=urls,
        implementations=implementations,
        queues=tuple(q for q in (queues or "").split(",") if q),
        concurrency=concurrency,
        autoscale=autoscale,
        pool=pool,
        loglevel=loglevel.upper(),
        hostname=hostname,
        extra_celery_config={
            "worker_prefetch_multiplier": prefetch_multiplier,
            **({} if events else {"worker_send_task_events": False}),
        },
        visibility_timeout=visibility_timeout,
        max_deliveries=max_deliveries,
        max_message_bytes=max_message_bytes,
    )
    contracts = _catalog(catalog)
    try:
        app = create_app(settings, contracts)
    except ImplementationError as error:
        _refuse(error)
    click.echo(f"task-server: broker {redact_url(urls.broker_url)}, {len(contracts)} contracts", err=True)
    for warning in redelivery_warnings(visibility_timeout, contracts):
        click.echo(f"task-server: warning: {warning}", err=True)
    app.worker_main(argv=_worker_argv(settings, contracts))


def _worker_argv(settings: WorkerSettings, catalog: ContractCatalog) -> list[str]:
    argv = ["worker", f"--loglevel={settings.loglevel}", f"--pool={settings.pool}"]
    argv.append(f"--queues={','.join(settings.queues or catalog.queues())}")
    if settings.concurrency:
        argv.append(f"--concurrency={settings.concurrency}")
    if settings.autoscale:
        maximum, minimum = settings.autoscale
        argv.append(f"--autoscale={maximum},{minimum}")
    if settings.hostname:
        argv.append(f"--hostname={settings.hostname}")
    return argv


def _refuse(error: ImplementationError) -> None:
    click.echo("task-server: the implementations do not match the contracts:", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(EXIT_IMPLEMENTATION)
