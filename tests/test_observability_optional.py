"""Traces and metrics are optional: off by default, the SDK imports nothing of OpenTelemetry or
prometheus-client then, and asking for them without their packages is a clear refusal.

(redis-py 8 itself imports OpenTelemetry when it is installed, so the check watches who imports:
every `import` statement of the SDK's own modules, through `builtins.__import__`.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from task_client import TaskClient

CLOSED_BROKER = "redis://127.0.0.1:9/0"
# Prints every import of an observability package made by the SDK's own modules.
WATCH_IMPORTS = """
import builtins
_real_import = builtins.__import__
def _watching(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and name.split(".")[0] in ("opentelemetry", "prometheus_client") and importer.startswith("task_"):
        print(f"{importer} imports {name}")
    return _real_import(name, globals, locals, fromlist, level)
builtins.__import__ = _watching
"""


def run_python(code: str, *, watch: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", (WATCH_IMPORTS if watch else "") + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "TASK_TRACING"}, **env},
        timeout=60,
    )


def test_a_client_without_tracing_imports_no_observability_package() -> None:
    done = run_python(
        f"""
        from task_client import TaskClient, TaskError
        with TaskClient({CLOSED_BROKER!r}, connect_timeout=0.2) as client:
            for publish in (lambda: client.add.submit(1, 2), lambda: client.add.map([(1, 2)] * 3)):
                try:
                    publish()
                except TaskError:
                    pass
        print("published")
        """,
        watch=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "published"


def test_a_worker_app_without_tracing_or_metrics_imports_no_observability_package() -> None:
    done = run_python(
        f"""
        from task_contracts import resolve_urls
        from task_server import create_app, WorkerSettings
        create_app(WorkerSettings(urls=resolve_urls({CLOSED_BROKER!r}, None)))
        print("built")
        """,
        watch=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "built"


def test_the_import_watch_sees_the_sdks_own_imports() -> None:
    done = run_python(
        f"""
        from task_client import TaskClient
        TaskClient({CLOSED_BROKER!r}, tracing=True)
        """,
        watch=True,
    )
    assert "task_client._tracing imports opentelemetry" in done.stdout, done.stderr


def test_client_tracing_follows_the_argument_then_task_tracing() -> None:
    os.environ.pop("TASK_TRACING", None)
    assert TaskClient(CLOSED_BROKER).settings.tracing is False
    assert TaskClient(CLOSED_BROKER, tracing=True).settings.tracing is True
    done = run_python(
        f"""
        from task_client import TaskClient
        default, off = TaskClient({CLOSED_BROKER!r}), TaskClient({CLOSED_BROKER!r}, tracing=False)
        print(default.settings.tracing, off.settings.tracing)
        """,
        TASK_TRACING="1",
    )
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_client_refuses_a_task_tracing_value_it_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_TRACING", "maybe")
    with pytest.raises(ValueError, match="TASK_TRACING='maybe'"):
        TaskClient(CLOSED_BROKER)


def test_client_tracing_without_opentelemetry_names_the_extra() -> None:
    done = run_python(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        from task_client import TaskClient
        try:
            TaskClient({CLOSED_BROKER!r}, tracing=True)
        except ValueError as error:
            print(error)
        """
    )
    assert "install task-client[otel]" in done.stdout, done.stderr


def run_worker(*args: str, blocked: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """`task-server worker ARGS` against a closed port, with module `blocked` made unimportable."""
    return run_python(
        f"""
        import runpy, sys
        if {blocked!r}:
            sys.modules[{blocked!r}] = None
        sys.argv = ["task-server", "worker", "--broker-url", {CLOSED_BROKER!r}, *{list(args)!r}]
        runpy.run_module("task_server", run_name="__main__")
        """,
        **env,
    )


def test_worker_tracing_without_opentelemetry_is_a_usage_error() -> None:
    done = run_worker("--tracing", blocked="opentelemetry.instrumentation.celery")
    assert done.returncode == 2
    assert "install task-server[otel]" in done.stderr


def test_worker_refuses_an_unknown_span_exporter() -> None:
    done = run_worker("--tracing", OTEL_TRACES_EXPORTER="nonesuch")
    assert done.returncode == 2
    assert "OTEL_TRACES_EXPORTER=nonesuch: no such span exporter is installed" in done.stderr


def test_worker_refuses_a_metrics_port_it_cannot_listen_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_worker("--metrics-port", str(port), "--metrics-address", "127.0.0.1")
    assert done.returncode == 2
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1" in done.stderr
