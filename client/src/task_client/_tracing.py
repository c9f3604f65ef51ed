"""OpenTelemetry trace context on every message, so the worker's task span joins the caller's trace.

Off unless asked for (`TaskClient(tracing=True)` or `TASK_TRACING=1`): only then is the
`opentelemetry` package imported. When on, each publish (one call, or every message of a batch)
(and each workflow) is a PRODUCER span, child of the caller's current span, and the propagators configured in
OpenTelemetry (W3C `traceparent` by default) write its context into each message's headers. A
worker with tracing on (the Celery instrumentation) makes its task span a child of that span.

The context is taken where the message is built, in the caller's thread or asyncio task, since
publishing may happen later on another thread (coalesced asyncio calls, batches). That is why the
client does not use OpenTelemetry's Celery instrumentation: its publish hook reads the context of
the thread that publishes, and for a task sent by name (not registered in the publishing app) its
span is dropped, and so ended, before the message is even sent. Cost when on: one span and one
`inject` per publish, not per message of a batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._producer import Outgoing
from ._steps import Steps

T = TypeVar("T")

TRACING_VARIABLE = "TASK_TRACING"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def tracing_wanted(tracing: bool | None) -> bool:
    """The argument, else `TASK_TRACING`, else off; raise `ValueError` for a value that is neither."""
    if tracing is not None:
        return tracing
    value = os.environ.get(TRACING_VARIABLE, "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(f"{TRACING_VARIABLE}={value!r}: expected 1/true/yes/on or 0/false/no/off")
    return value in _TRUE


class Tracing:
    """Spans around publishing, and the trace context they put into each message's headers."""

    def __init__(self) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError:
            raise ValueError(
                "tracing needs the OpenTelemetry API: install task-client[otel] (opentelemetry-api)"
            ) from None
        from importlib.metadata import PackageNotFoundError, version

        try:
            own_version = version("task-client")
        except PackageNotFoundError:  # running from a source tree
            own_version = ""
        self._trace = trace
        self._inject = propagate.inject
        self._tracer = trace.get_tracer("task_client", own_version)

    def traced(self, messages: Sequence[Outgoing], send: Callable[[list[Outgoing]], Steps[T]]) -> Steps[T]:
        """Run the steps `send(messages)` in a PRODUCER span, each message carrying its context."""
        first = messages[0]
        attributes: dict[str, Any] = {"messaging.destination.name": first.queue, "celery.task_name": first.name}
        if len(messages) == 1:
            attributes["messaging.message.id"] = first.task_id
        else:
            attributes["messaging.batch.message_count"] = len(messages)

        def send_traced(carrier: Mapping[str, str]) -> Steps[T]:
            return send([message._replace(headers={**message.headers, **carrier}) for message in messages])

        return self.around(f"send {first.name}", attributes, send_traced)

    def around(
        self, name: str, attributes: Mapping[str, Any], send: Callable[[Mapping[str, str]], Steps[T]]
    ) -> Steps[T]:
        """Run the steps `send(carrier)` in a PRODUCER span; `carrier` holds its context, for message headers."""
        span = self._tracer.start_span(
            name,
            kind=self._trace.SpanKind.PRODUCER,
            attributes={"messaging.operation.type": "send", **attributes},
        )
        carrier: dict[str, str] = {}
        self._inject(carrier, context=self._trace.set_span_in_context(span))
        try:
            return (yield from send(carrier))
        except BaseException as error:
            span.record_exception(error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error)))
            raise
        finally:
            span.end()
