"""OpenTelemetry spans for the tasks a worker runs (`task-server worker --tracing`), off by default.

Each task runs in a CONSUMER span of OpenTelemetry's Celery instrumentation, a child of the
span whose context the caller put into the message (`TaskClient(tracing=True)`, or any
producer using the W3C `traceparent` header), so one trace shows the caller and the task.

Spans are exported as the OpenTelemetry SDK's standard variables say (`OTEL_TRACES_EXPORTER`,
default `otlp` over HTTP; `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_BSP_*`), unless
the process already has a tracer provider (an implementations module or `opentelemetry-instrument`
set one up). The SDK's own environment set-up is private (`opentelemetry.sdk._configuration`),
hence the few lines of `_exporter_classes`. A prefork worker sets all this up in each pool process,
after the fork, as the instrumentation asks (its exporter thread would not survive the fork), and
in its main process too when that runs tasks on threads (contracts declared `cpu_bound=False`).
Cost when on: a span per task; when off, nothing here imports OpenTelemetry.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

from celery import signals

from ._errors import TracingUnavailable

DEFAULT_SERVICE_NAME = "task-server"
_EXPORTER_ALIASES = {"otlp": "otlp_proto_http"}  # the exporter the `otel` extra installs


def enable_tracing(pool: str, main_serves_tasks: bool) -> None:
    """Trace every task this worker runs, in whichever process runs it.

    `main_serves_tasks`: a prefork worker's main process also runs tasks (its `--threads`).
    """
    try:
        import opentelemetry.instrumentation.celery
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as error:
        raise TracingUnavailable(
            f"--tracing needs the OpenTelemetry SDK and Celery instrumentation: install task-server[otel] ({error})"
        ) from None
    _exporter_classes()  # an unknown exporter name is refused here, not in every pool process
    if pool != "prefork":  # every task runs in this process
        _trace_this_process(make_global=True)
        signals.worker_shutdown.connect(_flush, weak=False)
        return
    if main_serves_tasks:
        # Not the global provider: pool processes forked from this one must set up their own.
        _trace_this_process(make_global=False)
        signals.worker_shutdown.connect(_flush, weak=False)
    signals.worker_process_init.connect(_trace_pool_process, weak=False)
    signals.worker_process_shutdown.connect(_flush, weak=False)


# The provider this module made in this process, if any (a pool process inherits its parent's).
_own: dict[str, Any] = {}


def _trace_pool_process(**_: Any) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:  # inherited from the main process
        instrumentor.uninstrument()
    # Spans of this process go through exporters of its own: an exporter's connections must not
    # be shared with the parent it was forked from.
    _trace_this_process(make_global=True)


def _trace_this_process(make_global: bool) -> None:
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider: Any = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):  # nobody set OpenTelemetry up in this process
        named = os.environ.get("OTEL_SERVICE_NAME")
        provider = TracerProvider(resource=Resource.create({} if named else {"service.name": DEFAULT_SERVICE_NAME}))
        for exporter in _exporter_classes():
            provider.add_span_processor(BatchSpanProcessor(exporter()))
        if make_global:  # so that spans the implementations start nest under the task's
            trace.set_tracer_provider(provider)
    _own["provider"] = provider
    CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]


def _flush(**_: Any) -> None:
    # A process that exits (shutdown, autoscale, max tasks per child) sends its last spans first.
    force_flush = getattr(_own.get("provider"), "force_flush", None)
    if force_flush is not None:
        force_flush(5_000)


def _exporter_classes() -> list[Any]:
    """The span exporters `OTEL_TRACES_EXPORTER` names (comma-separated; `none` for none)."""
    names = [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    exporters = []
    for name in names:
        if name == "none":
            continue
        wanted = _EXPORTER_ALIASES.get(name, name)
        found = entry_points(group="opentelemetry_traces_exporter", name=wanted)
        if not found:
            raise TracingUnavailable(f"OTEL_TRACES_EXPORTER={name}: no such span exporter is installed")
        exporters.append(next(iter(found)).load())
    return exporters
