"""One trace across processes: the client's spans (kept in memory here) and the worker's task spans
(exported by a real prefork `task-server worker --tracing` over OTLP/HTTP to a receiver in this test)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as WireSpan
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, free_port, wait_until

from ..brokers import Broker
from ..catalog import diagnostics
from ..catalog import serving as serve_test_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]


class SpanReceiver(ThreadingHTTPServer):
    """An OTLP/HTTP endpoint on 127.0.0.1 that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[WireSpan] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), _ReceiverHandler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def received(self) -> list[WireSpan]:
        with self.lock:
            return list(self.spans)


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: SpanReceiver

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.server.spans.extend(scope_spans.spans)
        body = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def client_spans() -> InMemorySpanExporter:
    """This process's tracer provider, keeping its spans in memory (set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="module")
def traced_worker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, SpanReceiver]]:
    """A prefork worker with `--tracing` on a broker of this module's own (no other worker steals its tasks)."""
    receiver = SpanReceiver()
    serving = threading.Thread(target=receiver.serve_forever, daemon=True)
    serving.start()
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 0.1 s instead of 5 s
        "OTEL_SERVICE_NAME": "worker-under-test",
    }
    logdir = str(tmp_path_factory.mktemp("traced-worker"))
    with RedisProcess(workdir=str(tmp_path_factory.mktemp("redis"))) as redis:
        redis.start()
        if broker.kind == "redis":
            own = Broker("redis", redis.url, redis.url)
        else:
            assert broker.node is not None
            vhost, url = broker.node.fresh_vhost("traces")
            own = Broker("rabbitmq", url, redis.url, broker.node)
        worker = WorkerProcess(
            own.url,
            result_backend=own.result_backend,
            concurrency=2,
            extra_args=["--tracing"],
            logdir=logdir,
            **serve_test_catalog(env),
        )
        with worker:
            worker.start()
            try:
                yield own, receiver
            finally:
                worker.stop()
                receiver.shutdown()
                receiver.server_close()
                if broker.node is not None and broker.kind == "rabbitmq":
                    broker.node.delete_vhost_later(vhost)


def worker_span(receiver: SpanReceiver, trace_id: int, name: str) -> WireSpan:
    """The worker's span named `name` in the trace `trace_id`, waiting for its export."""
    wanted = trace_id.to_bytes(16, "big")

    def found() -> list[WireSpan]:
        return [span for span in receiver.received() if span.trace_id == wanted and span.name == name]

    wait_until(lambda: bool(found()), 30, f"the worker's span {name!r} in trace {trace_id:032x}", interval=0.1)
    [span] = found()
    return span


def sent_span(exporter: InMemorySpanExporter, parent: trace.Span, name: str) -> ReadableSpan:
    """The client's PRODUCER span under `parent`."""
    parent_id = parent.get_span_context().span_id
    [span] = [
        span
        for span in exporter.get_finished_spans()
        if span.name == name and span.parent is not None and span.parent.span_id == parent_id
    ]
    assert span.kind is trace.SpanKind.PRODUCER
    return span


def assert_child(task: WireSpan, sent: ReadableSpan) -> None:
    assert task.trace_id == sent.context.trace_id.to_bytes(16, "big")
    assert task.parent_span_id == sent.context.span_id.to_bytes(8, "big")
    assert task.kind == WireSpan.SPAN_KIND_CONSUMER


def test_a_call_and_its_task_are_one_trace(
    traced_worker: tuple[Broker, SpanReceiver], client_spans: InMemorySpanExporter
) -> None:
    own, receiver = traced_worker
    tracer = trace.get_tracer("test")
    with (
        TaskClient(own.url, own.result_backend, tracing=True) as client,
        tracer.start_as_current_span("caller") as caller,
    ):
        handle = client.add.submit(2, 3)
        assert handle.result(timeout=10) == 5
    sent = sent_span(client_spans, caller, "send math.add")
    assert sent.attributes is not None and sent.attributes["messaging.message.id"] == handle.id
    task = worker_span(receiver, caller.get_span_context().trace_id, "run/math.add")
    assert_child(task, sent)
    assert {item.key: item.value.string_value for item in task.attributes}["messaging.message.id"] == handle.id


def test_map_chunks_carry_the_callers_trace(
    traced_worker: tuple[Broker, SpanReceiver], client_spans: InMemorySpanExporter
) -> None:
    own, receiver = traced_worker
    tracer = trace.get_tracer("test")
    with (
        TaskClient(own.url, own.result_backend, tracing=True) as client,
        tracer.start_as_current_span("batch caller") as caller,
    ):
        assert client.add.map([(1, 2)] * 4) == [3] * 4
    sent = sent_span(client_spans, caller, "send math.add:chunk")
    task = worker_span(receiver, caller.get_span_context().trace_id, "run/math.add:chunk")
    assert_child(task, sent)


def test_concurrent_asyncio_calls_each_keep_their_own_trace(
    traced_worker: tuple[Broker, SpanReceiver], client_spans: InMemorySpanExporter
) -> None:
    own, receiver = traced_worker
    tracer = trace.get_tracer("test")

    async def call_in_span(client: TaskClient, name: str, x: int) -> tuple[trace.Span, int]:
        with tracer.start_as_current_span(name) as span:
            return span, await client.aio.mul(x, 2)

    async def both(client: TaskClient) -> list[tuple[trace.Span, int]]:
        # Published in the same loop tick, so in one pipelined batch: each message keeps its caller's trace.
        return await asyncio.gather(call_in_span(client, "first", 1), call_in_span(client, "second", 2))

    with TaskClient(own.url, own.result_backend, tracing=True) as client:
        (first, one), (second, two) = asyncio.run(both(client))
    assert (one, two) == (2, 4)
    for caller in (first, second):
        sent = sent_span(client_spans, caller, "send math.mul")
        assert_child(worker_span(receiver, caller.get_span_context().trace_id, "run/math.mul"), sent)
    assert first.get_span_context().trace_id != second.get_span_context().trace_id


def test_an_untraced_client_sends_no_trace_context(
    traced_worker: tuple[Broker, SpanReceiver], client_spans: InMemorySpanExporter
) -> None:
    own, receiver = traced_worker
    tracer = trace.get_tracer("test")
    with TaskClient(own.url, own.result_backend) as client, tracer.start_as_current_span("untraced caller") as caller:
        handle = client.add.submit(20, 3)
        assert handle.result(timeout=10) == 23
    assert not [
        span for span in client_spans.get_finished_spans() if span.parent and span.parent == caller.get_span_context()
    ]

    def task_span() -> list[WireSpan]:
        return [
            span
            for span in receiver.received()
            if any(
                item.key == "messaging.message.id" and item.value.string_value == handle.id for item in span.attributes
            )
        ]

    wait_until(lambda: bool(task_span()), 30, "the worker's span of the untraced call", interval=0.1)
    [task] = task_span()
    # The worker still traces the task, as the root of a trace of its own.
    assert task.trace_id != caller.get_span_context().trace_id.to_bytes(16, "big")
    assert task.parent_span_id == b""


def test_every_link_of_a_workflow_joins_the_callers_trace(
    traced_worker: tuple[Broker, SpanReceiver], client_spans: InMemorySpanExporter
) -> None:
    own, receiver = traced_worker
    tracer = trace.get_tracer("test")
    with (
        TaskClient(own.url, own.result_backend, tracing=True) as client,
        tracer.start_as_current_span("workflow caller") as caller,
    ):
        assert (client.add.s(4, 7) | client.mul.s(10))() == 110
    sent = sent_span(client_spans, caller, "send workflow")
    trace_id = caller.get_span_context().trace_id
    # The first link is published by the client; the next by the worker that ran the first.
    assert_child(worker_span(receiver, trace_id, "run/math.add"), sent)
    assert worker_span(receiver, trace_id, "run/math.mul").kind == WireSpan.SPAN_KIND_CONSUMER


def test_tasks_in_pool_processes_and_in_main_process_threads_are_both_traced(
    traced_worker: tuple[Broker, SpanReceiver], client_spans: InMemorySpanExporter
) -> None:
    # math.mul is declared cpu_bound=False (served on the main process's threads), diagnostics.sleep
    # is not (served by a pool process): each process has its own exporter.
    own, receiver = traced_worker
    tracer = trace.get_tracer("test")
    with TaskClient(own.url, own.result_backend, tracing=True) as client:
        with tracer.start_as_current_span("pool caller") as pool_caller:
            assert client.task(diagnostics.sleep)(0.01) == 0.01
        with tracer.start_as_current_span("thread caller") as thread_caller:
            assert client.mul(2, 3) == 6
    for caller, task, name in (
        (pool_caller, "diagnostics.sleep", "run/diagnostics.sleep"),
        (thread_caller, "math.mul", "run/math.mul"),
    ):
        sent = sent_span(client_spans, caller, f"send {task}")
        assert_child(worker_span(receiver, caller.get_span_context().trace_id, name), sent)
